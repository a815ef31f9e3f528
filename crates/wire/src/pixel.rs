//! The byte order of the 4-byte pixels a frame is read in.
//!
//! crosscast's own slots hold RGBA (the protocol's `PixelFormat::Rgba8`). Wayland's `wl_shm`
//! formats ARGB8888 and XRGB8888 are little-endian 32-bit words, so their bytes in memory are
//! B, G, R, A (or X). The host reads both in place, without a copy, so everything that reads a
//! frame (the colour converter, the preview) is told which order the bytes are in.

/// Byte order of a frame's 4-byte pixels in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PixelOrder {
    /// R, G, B, A: crosscast's slots.
    #[default]
    Rgba,
    /// B, G, R, A (or X): Wayland `wl_shm` ARGB8888 / XRGB8888.
    Bgra,
}

impl PixelOrder {
    /// Byte offsets of red, green and blue within one pixel.
    pub fn rgb_offsets(self) -> [usize; 3] {
        match self {
            PixelOrder::Rgba => [0, 1, 2],
            PixelOrder::Bgra => [2, 1, 0],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_name_red_green_blue() {
        let px_rgba = [10u8, 20, 30, 255];
        let px_bgra = [30u8, 20, 10, 255];
        let rgb = |px: [u8; 4], o: PixelOrder| o.rgb_offsets().map(|i| px[i]);
        assert_eq!(rgb(px_rgba, PixelOrder::Rgba), [10, 20, 30]);
        assert_eq!(rgb(px_bgra, PixelOrder::Bgra), [10, 20, 30]);
    }
}
