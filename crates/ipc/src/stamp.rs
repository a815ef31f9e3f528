//! A per-frame stamp that lets the host prove it got exactly the frame the game drew: the first
//! 16 bytes of a frame hold its sequence number and a CRC-32 of the rest of the frame.
//!
//! ```
//! use crosscast_ipc::stamp;
//! let mut frame = vec![7u8; 64 * 16];
//! stamp::write(&mut frame, 42);
//! assert_eq!(stamp::verify(&frame), Ok(42));
//! frame[100] ^= 1;
//! assert!(stamp::verify(&frame).is_err());
//! ```

/// Bytes the stamp occupies at the start of the frame.
pub const STAMP_LEN: usize = 16;

/// Why a stamp does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StampError {
    /// The frame is too small to carry a stamp.
    #[error("frame too small for a stamp")]
    TooSmall,
    /// The pixels differ from what the game stamped.
    #[error("frame {seq}: checksum {found:08x} != stamped {stamped:08x}")]
    Mismatch {
        /// Sequence number found in the stamp.
        seq: u64,
        /// CRC stamped by the game.
        stamped: u32,
        /// CRC of the pixels received.
        found: u32,
    },
}

/// Stamps `frame` (game side, after drawing).
pub fn write(frame: &mut [u8], seq: u64) {
    if frame.len() < STAMP_LEN {
        return;
    }
    let crc = crc32fast::hash(&frame[STAMP_LEN..]);
    frame[..8].copy_from_slice(&seq.to_le_bytes());
    frame[8..12].copy_from_slice(&crc.to_le_bytes());
    frame[12..16].copy_from_slice(&[0xcc, 0xcc, 0xcc, 0xff]);
}

/// Checks a stamped frame (host side) and returns the sequence number it carries.
pub fn verify(frame: &[u8]) -> Result<u64, StampError> {
    if frame.len() < STAMP_LEN {
        return Err(StampError::TooSmall);
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&frame[..8]);
    let seq = u64::from_le_bytes(seq);
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&frame[8..12]);
    let stamped = u32::from_le_bytes(crc);
    let found = crc32fast::hash(&frame[STAMP_LEN..]);
    if found == stamped {
        Ok(seq)
    } else {
        Err(StampError::Mismatch {
            seq,
            stamped,
            found,
        })
    }
}
