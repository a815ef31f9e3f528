//! A game frame whose size differs from the encoder's (the game resized mid-stream): scaled
//! with its aspect ratio kept and centred on black, as a streaming canvas shows a source that
//! does not match it. The stream keeps its size, which RTMP ingests and players expect.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use crate::MediaError;

/// Scales frames of one source size into a black canvas of the output size; rebuilt when the
/// source size changes.
pub(crate) struct Fitter {
    source: (u32, u32),
    output: (u32, u32),
    resizer: Resizer,
    /// The source rows without the slot's row padding, when it has any.
    packed: Vec<u8>,
    scaled: Image<'static>,
    /// Where the scaled picture sits in the canvas: x, y, width, height (all even).
    rect: (u32, u32, u32, u32),
    /// The output-size RGBA picture handed to the colour conversion.
    canvas: Vec<u8>,
}

/// The largest even-sized rectangle with the source's aspect ratio that fits the output,
/// centred on even coordinates (I420 halves both axes).
pub(crate) fn fit_rect(source: (u32, u32), output: (u32, u32)) -> (u32, u32, u32, u32) {
    let (sw, sh) = (u64::from(source.0.max(1)), u64::from(source.1.max(1)));
    let (ow, oh) = (u64::from(output.0), u64::from(output.1));
    // Width-limited unless that makes it too tall.
    let (w, h) = if ow * sh <= oh * sw {
        (ow, ow * sh / sw)
    } else {
        (oh * sw / sh, oh)
    };
    let even = |v: u64| (v & !1).max(2) as u32;
    let (w, h) = (even(w).min(output.0), even(h).min(output.1));
    let x = ((output.0 - w) / 2) & !1;
    let y = ((output.1 - h) / 2) & !1;
    (x, y, w, h)
}

impl Fitter {
    /// A fitter from `source` to `output` (both width, height in pixels).
    pub(crate) fn new(source: (u32, u32), output: (u32, u32)) -> Result<Self, MediaError> {
        let rect = fit_rect(source, output);
        let mut canvas = vec![0u8; output.0 as usize * output.1 as usize * 4];
        for px in canvas.chunks_exact_mut(4) {
            px[3] = 255;
        }
        Ok(Fitter {
            source,
            output,
            resizer: Resizer::new(),
            packed: Vec::new(),
            scaled: Image::new(rect.2, rect.3, PixelType::U8x4),
            rect,
            canvas,
        })
    }

    /// The source size this fitter scales from.
    pub(crate) fn source(&self) -> (u32, u32) {
        self.source
    }

    /// Scales `rgba` (the source size, `stride` bytes a row, already checked to be long
    /// enough) into the canvas and returns the canvas (output size, `4 × width` a row).
    pub(crate) fn fit(&mut self, rgba: &[u8], stride: usize) -> Result<&[u8], MediaError> {
        let (sw, sh) = self.source;
        let row = sw as usize * 4;
        let tight = if stride == row {
            &rgba[..row * sh as usize]
        } else {
            self.packed.clear();
            for y in 0..sh as usize {
                self.packed
                    .extend_from_slice(&rgba[y * stride..y * stride + row]);
            }
            &self.packed[..]
        };
        let bad = |e: &dyn std::fmt::Display| {
            MediaError::InvalidFrame(format!(
                "cannot scale {sw}x{sh} to {}x{}: {e}",
                self.rect.2, self.rect.3
            ))
        };
        let src = ImageRef::new(sw, sh, tight, PixelType::U8x4).map_err(|e| bad(&e))?;
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        self.resizer
            .resize(&src, &mut self.scaled, &options)
            .map_err(|e| bad(&e))?;
        let (x, y, w, h) = self.rect;
        let (out_row, w_bytes) = (self.output.0 as usize * 4, w as usize * 4);
        for (r, from) in self
            .scaled
            .buffer()
            .chunks_exact(w_bytes)
            .take(h as usize)
            .enumerate()
        {
            let at = (y as usize + r) * out_row + x as usize * 4;
            self.canvas[at..at + w_bytes].copy_from_slice(from);
        }
        Ok(&self.canvas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_keeps_the_aspect_ratio_and_centres_on_even_coordinates() {
        // 16:9 into 4:3: full width, bars above and below.
        assert_eq!(fit_rect((640, 360), (320, 240)), (0, 30, 320, 180));
        // 4:3 into 16:9: full height, bars left and right.
        assert_eq!(fit_rect((320, 240), (640, 360)), (80, 0, 480, 360));
        // Same aspect: the whole output.
        assert_eq!(fit_rect((1920, 1080), (1280, 720)), (0, 0, 1280, 720));
        // Degenerate sources still give an even, non-empty rectangle inside the output.
        let (x, y, w, h) = fit_rect((4096, 16), (320, 240));
        assert!(w % 2 == 0 && h % 2 == 0 && x % 2 == 0 && y % 2 == 0 && h >= 2);
        assert!(x + w <= 320 && y + h <= 240);
    }

    #[test]
    fn odd_sized_frames_are_scaled_not_refused() {
        // GStreamer's waylandsink commits a 1x1 buffer; clients may commit any odd size.
        let mut fitter = None;
        let mut img = crate::convert::I420Image::new(32, 32).unwrap();
        for (w, h) in [(1u32, 1u32), (3, 5), (33, 17)] {
            let src = vec![255u8; w as usize * h as usize * 4];
            let got = crate::encoder::fit_and_convert(
                &mut fitter,
                (32, 32),
                (&src, crosscast_wire::PixelOrder::Rgba),
                w as usize * 4,
                (w, h),
                &mut img,
            );
            assert!(got.is_ok(), "{w}x{h}: {got:?}");
        }
        // Zero still is refused.
        let got = crate::encoder::fit_and_convert(
            &mut fitter,
            (32, 32),
            (&[], crosscast_wire::PixelOrder::Rgba),
            0,
            (0, 4),
            &mut img,
        );
        assert!(got.is_err());
    }

    #[test]
    fn a_wide_frame_is_letterboxed_on_black() {
        let (sw, sh) = (64u32, 32u32);
        let stride = sw as usize * 4 + 16; // padded rows, as slots may have
        let mut src = vec![0u8; stride * sh as usize];
        for row in src.chunks_mut(stride) {
            for px in row[..sw as usize * 4].chunks_exact_mut(4) {
                px.copy_from_slice(&[200, 30, 40, 255]);
            }
        }
        let mut f = Fitter::new((sw, sh), (32, 32)).unwrap();
        assert_eq!(f.source(), (64, 32));
        let out = f.fit(&src, stride).unwrap().to_vec();
        let px = |x: usize, y: usize| &out[(y * 32 + x) * 4..(y * 32 + x) * 4 + 4];
        // 2:1 into 1:1: rows 8..24 carry the picture, the rest is black.
        assert_eq!(px(16, 2), &[0, 0, 0, 255]);
        assert_eq!(px(16, 29), &[0, 0, 0, 255]);
        let mid = px(16, 16);
        assert!(mid[0] > 180 && mid[1] < 60 && mid[2] < 60, "{mid:?}");
    }
}
