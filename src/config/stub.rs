// TEMPORARY STUB (removed at merge)
use super::*;
use std::path::Path;
#[derive(Debug)] pub struct ConfigError(pub String);
impl std::fmt::Display for ConfigError { fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result { f.write_str(&self.0) } }
impl std::error::Error for ConfigError {}
pub fn load(_d: &Path, _c: Component, _n: &str) -> Result<Config, ConfigError> { todo!() }
pub fn list(_d: &Path) -> Vec<(Component, String)> { todo!() }
pub fn redact_url(_u: &url::Url) -> String { todo!() }
pub fn expand_time_vars(_s: &str, _n: chrono::DateTime<chrono::Local>) -> String { todo!() }
impl Config { pub fn show(&self) -> String { todo!() } }
