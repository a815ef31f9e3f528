//! Hard limits applied while decoding, so a hostile peer cannot make the host allocate or map
//! more than these bounds allow.

/// Largest encoded message, header included. Frames never cross the socket, so the biggest
/// message is a 40 ms f32 stereo audio block (15 360 bytes of samples).
pub const MAX_MESSAGE_LEN: usize = 32 * 1024;
/// Most frame slots one surface configuration may have.
pub const MAX_SLOTS: u8 = 8;
/// Fewest frame slots: one held by the host, one queued, one being drawn.
pub const MIN_SLOTS: u8 = 2;
/// Smallest frame width or height in pixels.
pub const MIN_DIMENSION: u32 = 16;
/// Largest frame width or height in pixels.
pub const MAX_DIMENSION: u32 = 4096;
/// Largest single frame slot in bytes (4096 x 4096 RGBA).
pub const MAX_FRAME_BYTES: u64 = 4096 * 4096 * 4;
/// Sample rates an audio stream may use.
pub const SAMPLE_RATES: [u32; 2] = [44_100, 48_000];
/// Most audio channels.
pub const MAX_CHANNELS: u8 = 2;
/// Shortest audio block in milliseconds.
pub const MIN_BLOCK_MS: u32 = 5;
/// Longest audio block in milliseconds.
pub const MAX_BLOCK_MS: u32 = 40;
/// Longest human-readable reason carried in an error or goodbye message.
pub const MAX_REASON_LEN: usize = 256;

/// Frames per channel an audio block at `rate` may carry, inclusive.
pub fn block_frames_range(rate: u32) -> std::ops::RangeInclusive<u32> {
    (rate * MIN_BLOCK_MS / 1000)..=(rate * MAX_BLOCK_MS / 1000)
}

/// Largest touch point id in an input event (ten fingers, numbered from 0, with room to spare).
pub const MAX_TOUCH_ID: u32 = 15;
