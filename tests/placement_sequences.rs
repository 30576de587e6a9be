//! Random sequences of hostile messages, through the sender's and
//! subscribe's own placement and delivery, into a real `file:` tree with a
//! canary beside the destination: nothing outside the destination changes
//! (fuzz/common/placement.rs says how the sequences are made; the
//! `placement` fuzz target explores the same space without bound).

#[path = "../fuzz/common/placement.rs"]
mod placement;

use placement::{Tree, Way};

/// A small deterministic generator (xorshift64*), so a failure replays.
struct Rng(u64);

impl Rng {
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 >> 12;
                self.0 ^= self.0 << 25;
                self.0 ^= self.0 >> 27;
                (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect()
    }
}

fn run(way: Way, seed: u64, sequences: usize) {
    let mut rng = Rng(seed);
    for i in 0..sequences {
        let tree = Tree::new(way);
        let data = rng.bytes(4 * 24);
        tree.apply(&data);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tree.check()));
        if outcome.is_err() {
            panic!("sequence {i} of seed {seed:#x} escaped ({way:?}); its bytes: {data:?}");
        }
    }
}

#[test]
fn no_random_sequence_sent_to_a_file_destination_writes_outside_it() {
    run(Way::Send, 0x5eed_0001, 150);
}

#[test]
fn no_random_sequence_downloaded_by_subscribe_writes_outside_its_directory() {
    run(Way::Download, 0x5eed_0002, 150);
}
