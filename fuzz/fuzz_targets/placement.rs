//! Fuzz confinement: arbitrary bytes as a sequence of hostile v03
//! messages (fuzz/common/placement.rs decodes them), delivered by the
//! sender and by subscribe into a `file:` destination with a canary
//! beside it. Nothing outside the destination may change, and nothing may
//! panic.

#![no_main]

#[path = "../common/placement.rs"]
mod placement;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let way = match data.first() {
        Some(b) if b % 2 == 1 => placement::Way::Download,
        _ => placement::Way::Send,
    };
    let tree = placement::Tree::new(way);
    tree.apply(data.get(1..).unwrap_or_default());
    tree.check();
});
