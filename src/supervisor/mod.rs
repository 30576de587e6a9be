//! Starting, stopping and watching instance processes.
