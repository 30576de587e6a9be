//! The terminal, for the interactive verbs: single keys without Enter
//! (`top`'s `q`), and whether stdout is a terminal at all (progress bars).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Whether stdout is a terminal (progress bars and redraws only then).
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// Keys read one at a time from stdin, while this lives: the terminal is
/// put in non-canonical mode without echo or signals (so Ctrl-C arrives as
/// a key and the terminal is always restored), and restored on drop.
pub struct Keys {
    saved: Option<libc::termios>,
}

impl Keys {
    /// Raw keys if stdin is a terminal; otherwise a plain timer.
    pub fn raw() -> Keys {
        if !std::io::stdin().is_terminal() {
            return Keys { saved: None };
        }
        // SAFETY: tcgetattr/tcsetattr on fd 0 with a properly sized struct.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return Keys { saved: None };
            }
            let saved = t;
            t.c_lflag &= !(libc::ICANON | libc::ECHO | libc::ISIG);
            t.c_cc[libc::VMIN] = 0;
            t.c_cc[libc::VTIME] = 0;
            if libc::tcsetattr(0, libc::TCSANOW, &t) != 0 {
                return Keys { saved: None };
            }
            Keys { saved: Some(saved) }
        }
    }

    /// Waits up to `d`; true if `q`, Ctrl-C or Ctrl-D was pressed (or,
    /// without a terminal, never).
    pub fn wait_for_quit(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        if self.saved.is_none() {
            std::thread::sleep(d);
            return false;
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let mut pfd = libc::pollfd {
                fd: 0,
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, ms) };
            if n <= 0 {
                continue;
            }
            let mut buf = [0u8; 16];
            // SAFETY: reading into a buffer of the given length.
            let got = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            if got <= 0 {
                // EOF on the terminal: nobody can press q any more.
                return true;
            }
            if buf[..got as usize]
                .iter()
                .any(|b| matches!(b, b'q' | b'Q' | 3 | 4))
            {
                return true;
            }
        }
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        if let Some(t) = self.saved.take() {
            // SAFETY: restoring the attributes read in `raw`.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, &t);
            }
        }
    }
}
