//! The operating system's CSPRNG.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// The random number generator failed (it does not, short of a broken kernel).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RandomError;

/// Fills `buf` from the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) -> Result<(), RandomError> {
    SystemRandom::new().fill(buf).map_err(|_| RandomError)
}
