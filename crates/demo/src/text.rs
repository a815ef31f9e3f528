//! Text for the on-screen counter and clock: the bundled DejaVu Sans Mono Bold rasterised by
//! fontdue once per glyph and size, then alpha-blended straight into the RGBA frame.

use std::collections::HashMap;
use std::sync::OnceLock;

use fontdue::{Font, FontSettings};

/// DejaVu Sans Mono Bold (Bitstream Vera licence, see `assets/LICENSE-DejaVu.txt`).
const FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSansMono-Bold.ttf");

/// The parsed font, shared by every scene: parsing walks all glyph outlines once, which is too
/// slow to repeat per scene or per resize.
fn font() -> Result<&'static Font, String> {
    static FONT: OnceLock<Result<Font, String>> = OnceLock::new();
    FONT.get_or_init(|| {
        Font::from_bytes(FONT_BYTES, FontSettings::default()).map_err(str::to_owned)
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// One rasterised glyph: coverage bitmap and its placement relative to the pen on the baseline.
struct Glyph {
    left: i32,
    /// Rows from the top of the bitmap down to the baseline.
    top: i32,
    width: usize,
    height: usize,
    coverage: Vec<u8>,
}

/// Draws monospaced text at one pixel size.
pub(crate) struct TextPainter {
    font: &'static Font,
    px: f32,
    advance: i32,
    ascent: i32,
    line_height: i32,
    glyphs: HashMap<char, Glyph>,
}

impl TextPainter {
    /// A painter for text `px` pixels tall.
    pub(crate) fn new(px: f32) -> Result<TextPainter, String> {
        let font = font()?;
        let lines = font
            .horizontal_line_metrics(px)
            .ok_or_else(|| "the bundled font has no horizontal metrics".to_owned())?;
        Ok(TextPainter {
            font,
            px,
            advance: font.metrics('0', px).advance_width.round() as i32,
            ascent: lines.ascent.round() as i32,
            line_height: lines.new_line_size.round() as i32,
            glyphs: HashMap::new(),
        })
    }

    /// Width in pixels of `chars` characters.
    pub(crate) fn width(&self, chars: usize) -> i32 {
        self.advance * chars as i32
    }

    /// Distance between two baselines, in pixels.
    pub(crate) fn line_height(&self) -> i32 {
        self.line_height
    }

    /// Blends `text` in `rgb` into the packed RGBA frame `buf` (`width` pixels per row) with the
    /// top of its line box at (`x`, `y`). Anything outside the frame is clipped.
    pub(crate) fn draw(
        &mut self,
        buf: &mut [u8],
        width: usize,
        x: i32,
        y: i32,
        text: &str,
        rgb: [u8; 3],
    ) {
        let height = (buf.len() / 4 / width.max(1)) as i32;
        let baseline = y + self.ascent;
        for (i, c) in text.chars().enumerate() {
            let (font, px) = (self.font, self.px);
            let g = self.glyphs.entry(c).or_insert_with(|| {
                let (m, coverage) = font.rasterize(c, px);
                Glyph {
                    left: m.xmin,
                    top: m.height as i32 + m.ymin,
                    width: m.width,
                    height: m.height,
                    coverage,
                }
            });
            let gx = x + self.advance * i as i32 + g.left;
            let gy = baseline - g.top;
            for row in 0..g.height {
                let py = gy + row as i32;
                if py < 0 || py >= height {
                    continue;
                }
                for col in 0..g.width {
                    let px = gx + col as i32;
                    if px < 0 || px >= width as i32 {
                        continue;
                    }
                    let a = u32::from(g.coverage[row * g.width + col]);
                    if a == 0 {
                        continue;
                    }
                    let o = (py as usize * width + px as usize) * 4;
                    for (d, s) in buf[o..o + 3].iter_mut().zip(rgb) {
                        *d = ((u32::from(*d) * (255 - a) + u32::from(s) * a + 127) / 255) as u8;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_font_loads_and_digits_have_ink() {
        let mut t = TextPainter::new(24.0).expect("font");
        assert!(t.width(1) >= 10);
        for c in "0123456789:.frame".chars() {
            let (w, h) = (40usize, 40usize);
            let mut buf = vec![0u8; w * h * 4];
            t.draw(&mut buf, w, 4, 0, &c.to_string(), [255, 255, 255]);
            let ink = buf.chunks_exact(4).filter(|p| p[0] > 128).count();
            assert!(ink >= 3, "glyph {c:?} has {ink} lit pixels");
        }
    }

    #[test]
    fn clipped_text_does_not_panic() {
        let mut t = TextPainter::new(30.0).expect("font");
        let mut buf = vec![0u8; 16 * 16 * 4];
        t.draw(&mut buf, 16, -7, -9, "88:88", [255, 0, 0]);
        t.draw(&mut buf, 16, 10, 12, "frame 1", [255, 0, 0]);
    }
}
