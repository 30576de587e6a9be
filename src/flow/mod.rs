//! The flow loop every component runs, and one module per component.
pub mod watch;
