//! sr3's configuration language.
//!
//! A config is `~/.config/pitcher/<component>/<name>.conf` (laid out as sr3's
//! `~/.config/sr3`), read after `default.conf`, with `include` files,
//! `${VAR}` expansion and `credentials.conf` for passwords. The result is one
//! [`Config`]: every option with sr3's meaning and sr3's effective defaults
//! for that component.
//!
//! Errors name `file:line`, what was expected, and a "did you mean" for near
//! misses. A real sr3 keyword that pitcher does not implement is a warning in
//! [`Config::warnings`], never an error.

mod options;

pub use options::*;
