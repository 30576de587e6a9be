//! The embedded broker `local:`: exchanges, bindings and durable queues in
//! one SQLite database (WAL) under the state directory, shared by every
//! pitcher process of the user.
