//! How bytes move to (and from) the destination.
