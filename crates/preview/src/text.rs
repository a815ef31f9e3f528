//! Text: the bundled CJK-capable font, a glyph raster cache, and wrapped layout into
//! small coloured coverage bitmaps that the overlay caches per comment.

use std::collections::HashMap;

use ab_glyph::{point, Font, FontRef, GlyphId, PxScale, ScaleFont};

use crate::PreviewError;

/// DejaVu Sans (Bitstream Vera license) for Latin, Greek, Cyrillic and symbols.
static PRIMARY_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
/// Droid Sans Fallback Full (Apache-2.0) for CJK in about 4 MB, instead of tens of MB for a
/// full Noto CJK; it has no Latin, hence the primary font. See `assets/README.md`.
static FALLBACK_BYTES: &[u8] = include_bytes!("../assets/DroidSansFallbackFull.ttf");

/// Most lines one comment may take; longer comments end in an ellipsis.
const MAX_LINES: usize = 8;
/// Glyph rasters kept (each a few hundred bytes at overlay sizes).
const MAX_CACHED_GLYPHS: usize = 8192;

/// A straight-alpha RGBA bitmap: colour in RGB, glyph coverage in A.
#[derive(Debug, Clone, Default)]
pub(crate) struct Bitmap {
    pub(crate) w: u32,
    pub(crate) h: u32,
    pub(crate) rgba: Vec<u8>,
    /// The horizontal runs of inked pixels: text covers a small share of its box, and
    /// blending only these is what keeps composing cheap.
    pub(crate) runs: Vec<Run>,
}

/// `len` inked pixels from (`x`, `y`) in a [`Bitmap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Run {
    pub(crate) x: u32,
    pub(crate) y: u32,
    pub(crate) len: u32,
}

impl Bitmap {
    fn index_runs(&mut self) {
        self.runs.clear();
        for y in 0..self.h {
            let row = &self.rgba[(y * self.w * 4) as usize..((y + 1) * self.w * 4) as usize];
            let mut start = None;
            for (x, p) in row.chunks_exact(4).enumerate() {
                match (p[3] > 0, start) {
                    (true, None) => start = Some(x as u32),
                    (false, Some(s)) => {
                        self.runs.push(Run {
                            x: s,
                            y,
                            len: x as u32 - s,
                        });
                        start = None;
                    }
                    _ => {}
                }
            }
            if let Some(s) = start {
                self.runs.push(Run {
                    x: s,
                    y,
                    len: self.w - s,
                });
            }
        }
    }
}

/// A run of text in one colour.
pub(crate) struct Span<'a> {
    pub(crate) text: &'a str,
    pub(crate) rgb: [u8; 3],
}

#[derive(Debug)]
struct GlyphRaster {
    left: i32,
    top: i32,
    w: u32,
    h: u32,
    coverage: Vec<u8>,
}

pub(crate) struct TextRenderer {
    /// Primary first, then the fallback.
    fonts: [FontRef<'static>; 2],
    /// Per font, the factor from the requested size to its `PxScale`, so that both fonts get
    /// the same em size (`PxScale` alone sizes by ascent-to-descent, which would make the
    /// fallback's CJK look much smaller than the Latin beside it).
    em_fix: [f32; 2],
    /// Key: font index, glyph and pixel size in 1/64 px. Rasters are at whole-pixel positions:
    /// sub-pixel placement would multiply the cache for no visible gain at these sizes.
    glyphs: HashMap<(u8, GlyphId, u32), Option<GlyphRaster>>,
}

/// A glyph of a given font.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FGlyph {
    font: u8,
    id: GlyphId,
}

struct Item {
    ch: char,
    g: FGlyph,
    adv: f32,
    rgb: [u8; 3],
}

/// East Asian scripts break between any two characters; other text breaks at spaces.
fn breaks_anywhere(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x11FF | 0x2E80..=0x9FFF | 0xA960..=0xA97F | 0xAC00..=0xD7FF
        | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFFEF | 0x20000..=0x3FFFF)
}

impl TextRenderer {
    pub(crate) fn new() -> Result<TextRenderer, PreviewError> {
        let load = |b| FontRef::try_from_slice(b).map_err(|e| PreviewError::Font(e.to_string()));
        let fonts = [load(PRIMARY_BYTES)?, load(FALLBACK_BYTES)?];
        let height_per_em = |f: &FontRef<'static>| {
            let h = f.height_unscaled() / f.units_per_em().unwrap_or(1000.0);
            if h.is_finite() && h > 0.0 {
                h
            } else {
                1.0
            }
        };
        let base = height_per_em(&fonts[0]);
        let em_fix = [1.0, height_per_em(&fonts[1]) / base];
        Ok(TextRenderer {
            fonts,
            em_fix,
            glyphs: HashMap::new(),
        })
    }

    /// The first font with a glyph for `c`, or the primary font's "missing" box.
    fn glyph(&self, c: char) -> FGlyph {
        for (n, f) in self.fonts.iter().enumerate() {
            let id = f.glyph_id(c);
            if id.0 != 0 {
                return FGlyph { font: n as u8, id };
            }
        }
        FGlyph {
            font: 0,
            id: GlyphId(0),
        }
    }

    fn scale(&self, font: u8, px: f32) -> PxScale {
        PxScale::from(px * self.em_fix[usize::from(font)])
    }

    fn advance(&self, g: FGlyph, px: f32) -> f32 {
        self.fonts[usize::from(g.font)]
            .as_scaled(self.scale(g.font, px))
            .h_advance(g.id)
    }

    fn kern(&self, a: FGlyph, b: FGlyph, px: f32) -> f32 {
        if a.font != b.font {
            return 0.0;
        }
        self.fonts[usize::from(a.font)]
            .as_scaled(self.scale(a.font, px))
            .kern(a.id, b.id)
    }

    /// Ascent (rounded) and line height in pixels at `px`, covering both fonts.
    fn metrics(&self, px: f32) -> (i32, u32) {
        let scaled = |n: usize| self.fonts[n].as_scaled(self.scale(n as u8, px));
        let ascent = (0..2).map(|n| scaled(n).ascent()).fold(0.0, f32::max);
        let descent = (0..2).map(|n| scaled(n).descent()).fold(0.0, f32::min);
        let gap = scaled(0).line_gap();
        (
            ascent.round() as i32,
            (ascent - descent + gap).ceil().max(1.0) as u32,
        )
    }

    /// Line height in pixels at `px`.
    pub(crate) fn line_height(&self, px: f32) -> u32 {
        self.metrics(px).1
    }

    /// Width in pixels of `text` on one line.
    #[cfg(test)]
    pub(crate) fn width(&self, text: &str, px: f32) -> f32 {
        text.chars().map(|c| self.advance(self.glyph(c), px)).sum()
    }

    /// Whether a bundled font has a real glyph for `c`.
    #[cfg(test)]
    pub(crate) fn has_glyph(&self, c: char) -> bool {
        self.glyph(c).id.0 != 0
    }

    /// Lays `spans` out as one paragraph wrapped to `max_width` pixels (at most [`MAX_LINES`]
    /// lines) and rasterizes it. `max_width == u32::MAX` means one line.
    pub(crate) fn render(&mut self, spans: &[Span<'_>], px: f32, max_width: u32) -> Bitmap {
        let mut items: Vec<Item> = Vec::new();
        for span in spans {
            for ch in span.text.chars() {
                let g = self.glyph(ch);
                items.push(Item {
                    ch,
                    g,
                    adv: self.advance(g, px),
                    rgb: span.rgb,
                });
            }
        }
        let lines = wrap(&items, max_width as f32, |a, b| self.kern(a, b, px));
        let truncated = lines.len() > MAX_LINES;
        let lines = &lines[..lines.len().min(MAX_LINES)];
        let (ascent, line_h) = self.metrics(px);
        let ellipsis = {
            let g = self.glyph('…');
            Item {
                ch: '…',
                g,
                adv: self.advance(g, px),
                rgb: [255, 255, 255],
            }
        };
        let mut widest = 0f32;
        let mut placed: Vec<(i32, i32, FGlyph, [u8; 3])> = Vec::with_capacity(items.len());
        for (n, range) in lines.iter().enumerate() {
            let baseline = n as i32 * line_h as i32 + ascent;
            let mut x = 0f32;
            let mut prev: Option<FGlyph> = None;
            let last = truncated && n + 1 == lines.len();
            let line_items = items[range.clone()].iter().chain(last.then_some(&ellipsis));
            for it in line_items {
                if let Some(p) = prev {
                    x += self.kern(p, it.g, px);
                }
                placed.push((x.round() as i32, baseline, it.g, it.rgb));
                x += it.adv;
                prev = Some(it.g);
            }
            widest = widest.max(x);
        }
        let w = (widest.ceil() as u32).clamp(1, max_width.max(1));
        let h = (lines.len() as u32 * line_h).max(1);
        let mut bmp = Bitmap {
            w,
            h,
            rgba: vec![0; (w * h * 4) as usize],
            runs: Vec::new(),
        };
        let key_px = (px * 64.0).round() as u32;
        if self.glyphs.len() > MAX_CACHED_GLYPHS {
            // A long stream can show thousands of distinct CJK characters: start over rather than grow.
            self.glyphs.clear();
        }
        for (x, baseline, g, rgb) in placed {
            let font = &self.fonts[usize::from(g.font)];
            let scale = PxScale::from(px * self.em_fix[usize::from(g.font)]);
            let raster = self
                .glyphs
                .entry((g.font, g.id, key_px))
                .or_insert_with(|| rasterize(font, g.id, scale));
            if let Some(g) = raster {
                blit_glyph(&mut bmp, g, x + g.left, baseline + g.top, rgb);
            }
        }
        bmp.index_runs();
        bmp
    }
}

/// Greedy wrapping: break at the last opportunity (after a space, or around a CJK character)
/// before the line overflows; a word wider than the line is broken anywhere.
fn wrap(
    items: &[Item],
    max_width: f32,
    kern: impl Fn(FGlyph, FGlyph) -> f32,
) -> Vec<std::ops::Range<usize>> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut x = 0f32;
    let mut last_break: Option<usize> = None;
    let mut i = 0;
    while i < items.len() {
        let it = &items[i];
        if breaks_anywhere(it.ch) && i > start {
            last_break = Some(i);
        }
        let k = if i > start {
            kern(items[i - 1].g, it.g)
        } else {
            0.0
        };
        let right = x + k + it.adv;
        if right > max_width && i > start && !it.ch.is_whitespace() {
            let end = match last_break {
                Some(b) if b > start => b,
                _ => i,
            };
            lines.push(start..trim_end(items, start, end));
            start = end;
            while start < items.len() && items[start].ch.is_whitespace() {
                start += 1;
            }
            last_break = None;
            x = 0.0;
            i = start;
            continue;
        }
        x = right;
        if it.ch.is_whitespace() || breaks_anywhere(it.ch) {
            last_break = Some(i + 1);
        }
        i += 1;
    }
    if start < items.len() {
        lines.push(start..trim_end(items, start, items.len()));
    }
    if lines.is_empty() {
        lines.push(0..0);
    }
    lines
}

fn trim_end(items: &[Item], start: usize, mut end: usize) -> usize {
    while end > start && items[end - 1].ch.is_whitespace() {
        end -= 1;
    }
    end
}

fn rasterize(font: &FontRef<'static>, id: GlyphId, scale: PxScale) -> Option<GlyphRaster> {
    let outlined = font.outline_glyph(id.with_scale_and_position(scale, point(0.0, 0.0)))?;
    let b = outlined.px_bounds();
    let (w, h) = (b.width() as u32, b.height() as u32);
    if w == 0 || h == 0 {
        return None;
    }
    let mut coverage = vec![0u8; (w * h) as usize];
    outlined.draw(|x, y, c| {
        if let Some(p) = coverage.get_mut((y * w + x) as usize) {
            *p = (c.clamp(0.0, 1.0) * 255.0).round() as u8;
        }
    });
    Some(GlyphRaster {
        left: b.min.x as i32,
        top: b.min.y as i32,
        w,
        h,
        coverage,
    })
}

fn blit_glyph(bmp: &mut Bitmap, g: &GlyphRaster, x0: i32, y0: i32, rgb: [u8; 3]) {
    for gy in 0..g.h as i32 {
        let y = y0 + gy;
        if y < 0 || y >= bmp.h as i32 {
            continue;
        }
        for gx in 0..g.w as i32 {
            let x = x0 + gx;
            if x < 0 || x >= bmp.w as i32 {
                continue;
            }
            let c = g.coverage[(gy as u32 * g.w + gx as u32) as usize];
            if c == 0 {
                continue;
            }
            let o = ((y as u32 * bmp.w + x as u32) * 4) as usize;
            // Overlapping glyph edges keep the stronger coverage rather than summing past 255.
            if c >= bmp.rgba[o + 3] {
                bmp.rgba[o..o + 3].copy_from_slice(&rgb);
                bmp.rgba[o + 3] = c;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ink(b: &Bitmap) -> usize {
        b.rgba.chunks_exact(4).filter(|p| p[3] > 0).count()
    }

    #[test]
    fn font_covers_latin_and_cjk() {
        let t = TextRenderer::new().unwrap();
        for c in "Aaz09!?…éßЖω你好世界日本語カタカナ！，".chars() {
            assert!(t.has_glyph(c), "no glyph for {c:?}");
        }
    }

    #[test]
    fn renders_cjk_with_ink() {
        let mut t = TextRenderer::new().unwrap();
        let b = t.render(
            &[Span {
                text: "你好",
                rgb: [255, 255, 255],
            }],
            20.0,
            400,
        );
        assert_eq!(b.h, t.line_height(20.0));
        assert!(ink(&b) > 50, "CJK drew almost nothing: {}", ink(&b));
    }

    #[test]
    fn long_lines_wrap_to_width() {
        let mut t = TextRenderer::new().unwrap();
        let lh = t.line_height(20.0);
        let latin = "the quick brown fox jumps over the lazy dog again and again";
        let b = t.render(
            &[Span {
                text: latin,
                rgb: [255; 3],
            }],
            20.0,
            150,
        );
        assert!(b.w <= 150 && b.h >= 3 * lh, "{}x{}", b.w, b.h);
        let cjk = "这是一条很长的弹幕评论需要自动换行显示在评论面板里面";
        let b = t.render(
            &[Span {
                text: cjk,
                rgb: [255; 3],
            }],
            20.0,
            150,
        );
        assert!(b.w <= 150 && b.h >= 3 * lh, "{}x{}", b.w, b.h);
        // One unbreakable word wider than the line is cut anywhere instead of overflowing.
        let b = t.render(
            &[Span {
                text: &"W".repeat(60),
                rgb: [255; 3],
            }],
            20.0,
            100,
        );
        assert!(b.w <= 100 && b.h > lh);
        // Short text stays on one line, as wide as its glyphs.
        let b = t.render(
            &[Span {
                text: "hi",
                rgb: [255; 3],
            }],
            20.0,
            400,
        );
        assert_eq!(b.h, lh);
        assert!((b.w as f32 - t.width("hi", 20.0)).abs() <= 1.0);
    }

    #[test]
    fn runs_cover_exactly_the_inked_pixels() {
        let mut t = TextRenderer::new().unwrap();
        let b = t.render(
            &[Span {
                text: "Ink 墨水 test",
                rgb: [1, 2, 3],
            }],
            20.0,
            60,
        );
        let mut mask = vec![false; (b.w * b.h) as usize];
        for r in &b.runs {
            assert!(r.len > 0 && r.x + r.len <= b.w && r.y < b.h, "{r:?}");
            for x in r.x..r.x + r.len {
                assert!(!mask[(r.y * b.w + x) as usize], "overlapping runs");
                mask[(r.y * b.w + x) as usize] = true;
            }
        }
        let inked: Vec<bool> = b.rgba.chunks_exact(4).map(|p| p[3] > 0).collect();
        assert_eq!(mask, inked);
        assert!(!b.runs.is_empty());
    }

    #[test]
    fn very_long_comment_is_capped_in_lines() {
        let mut t = TextRenderer::new().unwrap();
        let b = t.render(
            &[Span {
                text: &"字".repeat(300),
                rgb: [255; 3],
            }],
            20.0,
            100,
        );
        assert_eq!(b.h, MAX_LINES as u32 * t.line_height(20.0));
    }
}
