// TEMPORARY STUB
use crate::message::*;
use std::path::Path;
#[derive(Debug)] pub struct MessageError;
impl std::fmt::Display for MessageError { fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result { f.write_str("x") } }
#[derive(Default)] pub struct FileMessageOptions { pub identity_method: String, pub time_copy: bool, pub perm_copy: bool, pub source: Option<String> }
impl Message {
 pub fn from_json(_b: &[u8]) -> Result<Message, MessageError> { todo!() }
 pub fn to_json(&self) -> String { todo!() }
 pub fn topic(&self, _p: &str) -> String { todo!() }
 pub fn url(&self) -> String { todo!() }
 pub fn for_file(_b: &str, _r: &str, _p: &Path, _o: &FileMessageOptions) -> std::io::Result<Message> { todo!() }
 pub fn for_remove(_b: &str, _r: &str) -> Message { todo!() }
 pub fn for_rmdir(_b: &str, _r: &str) -> Message { todo!() }
 pub fn for_mkdir(_b: &str, _r: &str, _m: u32) -> Message { todo!() }
 pub fn for_link(_b: &str, _r: &str, _t: &str) -> Message { todo!() }
 pub fn with_rename(self, _o: String) -> Message { todo!() }
}
pub mod timestamp { pub fn parse(_s: &str) -> Result<std::time::SystemTime, super::MessageError> { todo!() } }
