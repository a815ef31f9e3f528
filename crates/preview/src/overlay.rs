//! The overlay compositor: game frame + comments panel + live indicator, into the overlay's
//! own buffer. The game frame is only read: it is the same memory the encoder reads, and the
//! audience must never see the comments.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use crate::text::{Bitmap, Span, TextRenderer};
use crate::{Comment, PreviewError};
use crosscast_wire::PixelOrder;

/// The backdrop behind the panel and the indicator: dark blue-grey at about 66 % opacity.
const BACKDROP_RGB: [u32; 3] = [12, 14, 22];
const BACKDROP_ALPHA: u32 = 170; // out of 256
/// The live indicator's dot.
pub(crate) const DOT_RGB: [u8; 3] = [232, 28, 36];
const USER_RGB: [u8; 3] = [255, 204, 92];
const TEXT_RGB: [u8; 3] = [245, 245, 245];
/// Comments stay fully visible this long, then dim to [`AGED_FADE`] over [`FADE_SPAN`].
const FRESH_FOR: Duration = Duration::from_secs(30);
const FADE_SPAN: Duration = Duration::from_secs(60);
const AGED_FADE: f32 = 0.4;
/// The top part of the panel (as a share of its height) where scrolling comments fade out.
const TOP_FADE_SHARE: f32 = 0.3;
/// Larger frames are refused (an empty result) rather than allocated.
const MAX_SIDE: u32 = 16384;
/// Cached comment bitmaps unused for this many frames are freed.
const BLOCK_TTL_FRAMES: u64 = 120;

/// A pixel rectangle in frame coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
}

impl Rect {
    /// Whether pixel (`x`, `y`) is inside.
    pub fn contains(&self, x: u32, y: u32) -> bool {
        x >= self.x && y >= self.y && x - self.x < self.w && y - self.y < self.h
    }
}

/// What the live indicator shows.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveStatus {
    /// Short state word, e.g. `"LIVE"` or `"REC"`.
    pub state: String,
    /// Time since the stream started.
    pub elapsed: Duration,
    /// Current output bitrate.
    pub bitrate_kbps: f64,
    /// Frames dropped so far.
    pub dropped_frames: u64,
}

impl LiveStatus {
    fn line(&self) -> String {
        let s = self.elapsed.as_secs();
        let kbps = if self.bitrate_kbps.is_finite() {
            self.bitrate_kbps.max(0.0)
        } else {
            0.0
        };
        format!(
            "{}  {:02}:{:02}:{:02}  {:.0} kbps  {} dropped",
            self.state,
            s / 3600,
            s / 60 % 60,
            s % 60,
            kbps,
            self.dropped_frames
        )
    }
}

struct CachedBlock {
    user: String,
    text: String,
    bmp: Bitmap,
    last_used: u64,
}

/// Composites preview frames; owns the font, the glyph and comment caches and the output buffer.
pub struct Overlay {
    text: TextRenderer,
    buf: Vec<u8>,
    blocks: HashMap<(u64, u32, u32), CachedBlock>,
    indicator: Option<(String, u32, Bitmap)>,
    regions: Vec<Rect>,
    frame: u64,
    game_order: PixelOrder,
}

impl std::fmt::Debug for Overlay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overlay")
            .field("cached_comments", &self.blocks.len())
            .field("regions", &self.regions)
            .finish()
    }
}

/// Sizes for one frame size, scaled from a 1280x720 design by the shorter side, so a portrait
/// (phone-style) game gets the same text size as a landscape one, and a wider panel.
struct Layout {
    font_px: f32,
    margin: u32,
    pad: u32,
    gap: u32,
    panel: Rect,
}

impl Layout {
    fn new(w: u32, h: u32) -> Layout {
        let s = (w.min(h) as f32 / 720.0).clamp(0.5, 4.0);
        let portrait = h > w;
        let margin = (16.0 * s).round() as u32;
        let pad = (10.0 * s).round() as u32;
        let gap = (6.0 * s).round() as u32;
        let (w_share, h_share) = if portrait { (0.9, 0.4) } else { (0.36, 0.55) };
        let pw = ((w as f32 * w_share).min(480.0 * s) as u32).min(w.saturating_sub(2 * margin));
        let ph = (h as f32 * h_share) as u32;
        let panel = Rect {
            x: margin,
            y: h.saturating_sub(margin + ph),
            w: pw,
            h: ph,
        };
        Layout {
            font_px: (20.0 * s).max(11.0),
            margin,
            pad,
            gap,
            panel,
        }
    }
}

impl Overlay {
    /// Loads the bundled font. Fails only if the font in the build is broken.
    pub fn new() -> Result<Overlay, PreviewError> {
        Ok(Overlay {
            text: TextRenderer::new()?,
            buf: Vec::new(),
            blocks: HashMap::new(),
            indicator: None,
            regions: Vec::new(),
            frame: 0,
            game_order: PixelOrder::Rgba,
        })
    }

    /// The byte order of the game frames [`compose`](Overlay::compose) gets from now on: RGBA
    /// from crosscast's slots (the default), BGRA from a Wayland client's `wl_shm` buffer. The
    /// overlay's own output is always RGBA.
    pub fn set_game_order(&mut self, order: PixelOrder) {
        self.game_order = order;
    }

    /// Composites the game frame (RGBA8, `stride` bytes per row) + comments panel (when
    /// `comments` is not empty; newest last, as [`crate::CommentFeed::snapshot`] gives them) +
    /// live indicator into the overlay's own buffer and returns it (RGBA8, `width * 4` bytes per
    /// row). `game` is never written. Rows missing from a too-short `game` come out black; a
    /// side over 16384 pixels gives an empty result.
    #[expect(
        clippy::too_many_arguments,
        reason = "the host's agreed signature: one frame's raw parts plus what to draw"
    )]
    pub fn compose(
        &mut self,
        game: &[u8],
        width: u32,
        height: u32,
        stride: usize,
        comments: &[Comment],
        status: &LiveStatus,
        now: Instant,
    ) -> &[u8] {
        self.frame += 1;
        self.regions.clear();
        if width > MAX_SIDE || height > MAX_SIDE {
            self.buf.clear();
            return &self.buf;
        }
        let row = width as usize * 4;
        self.buf.resize(row * height as usize, 0);
        for (y, dst) in self.buf.chunks_exact_mut(row.max(1)).enumerate() {
            let start = y * stride;
            match game.get(start..start + row) {
                Some(src) if stride >= row => dst.copy_from_slice(src),
                _ => dst.fill(0),
            }
            if self.game_order == PixelOrder::Bgra {
                for px in dst.chunks_exact_mut(4) {
                    px.swap(0, 2);
                }
            }
        }
        if width < 64 || height < 64 {
            return &self.buf;
        }
        let lay = Layout::new(width, height);
        let mut canvas = Canvas {
            buf: &mut self.buf,
            w: width,
            h: height,
        };
        self.regions.push(draw_indicator(
            &mut canvas,
            &mut self.text,
            &mut self.indicator,
            status,
            &lay,
        ));
        if !comments.is_empty() {
            self.regions.push(draw_comments(
                &mut canvas,
                &mut self.text,
                &mut self.blocks,
                comments,
                &lay,
                now,
                self.frame,
            ));
        }
        if self.frame % BLOCK_TTL_FRAMES == 0 {
            let frame = self.frame;
            self.blocks
                .retain(|_, b| frame - b.last_used < BLOCK_TTL_FRAMES);
        }
        &self.buf
    }

    /// The areas the last [`Overlay::compose`] drew on; every pixel outside them is the game's.
    pub fn drawn_regions(&self) -> &[Rect] {
        &self.regions
    }
}

struct Canvas<'a> {
    buf: &'a mut [u8],
    w: u32,
    h: u32,
}

impl Canvas<'_> {
    fn backdrop(&mut self, r: Rect) {
        let inv = 256 - BACKDROP_ALPHA;
        let [cr, cg, cb] = BACKDROP_RGB.map(|c| c * BACKDROP_ALPHA);
        for y in r.y..(r.y + r.h).min(self.h) {
            let x1 = (r.x + r.w).min(self.w);
            let start = (y * self.w + r.x) as usize * 4;
            let end = (y * self.w + x1) as usize * 4;
            for p in self.buf[start..end].chunks_exact_mut(4) {
                p[0] = ((u32::from(p[0]) * inv + cr) >> 8) as u8;
                p[1] = ((u32::from(p[1]) * inv + cg) >> 8) as u8;
                p[2] = ((u32::from(p[2]) * inv + cb) >> 8) as u8;
            }
        }
    }

    /// Blends the inked runs of `bmp` with its top-left at (`x0`, `y0`), drawing only inside
    /// `clip`; `fade` gives each frame row's opacity out of 256.
    fn bitmap(&mut self, bmp: &Bitmap, x0: u32, y0: i64, clip: Rect, fade: impl Fn(u32) -> u32) {
        let bottom = i64::from((clip.y + clip.h).min(self.h));
        let right = (clip.x + clip.w).min(self.w);
        for run in &bmp.runs {
            let y = y0 + i64::from(run.y);
            if y < i64::from(clip.y) || y >= bottom {
                continue;
            }
            let y = y as u32;
            let f = fade(y);
            let x_start = (x0 + run.x).max(clip.x);
            let x_end = (x0 + run.x + run.len).min(right);
            if f == 0 || x_start >= x_end {
                continue;
            }
            let n = (x_end - x_start) as usize * 4;
            let src_at = (run.y * bmp.w + (x_start - x0)) as usize * 4;
            let src = &bmp.rgba[src_at..src_at + n];
            let dst_at = (y * self.w + x_start) as usize * 4;
            let dst = &mut self.buf[dst_at..dst_at + n];
            for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(4)) {
                let a = (u32::from(s[3]) * f) >> 8;
                let inv = 255 - a;
                for (dc, &sc) in d[..3].iter_mut().zip(&s[..3]) {
                    let v = u32::from(*dc) * inv + u32::from(sc) * a;
                    *dc = ((v + 1 + (v >> 8)) >> 8) as u8;
                }
            }
        }
    }

    /// An anti-aliased filled circle.
    fn dot(&mut self, cx: f32, cy: f32, r: f32, rgb: [u8; 3]) {
        let (x0, x1) = (
            (cx - r - 1.0).max(0.0) as u32,
            ((cx + r + 1.0) as u32).min(self.w),
        );
        let (y0, y1) = (
            (cy - r - 1.0).max(0.0) as u32,
            ((cy + r + 1.0) as u32).min(self.h),
        );
        for y in y0..y1 {
            for x in x0..x1 {
                let d = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt();
                let a = ((r + 0.5 - d).clamp(0.0, 1.0) * 255.0) as u32;
                if a == 0 {
                    continue;
                }
                let o = (y * self.w + x) as usize * 4;
                for (d, &s) in self.buf[o..o + 3].iter_mut().zip(&rgb) {
                    let v = u32::from(*d) * (255 - a) + u32::from(s) * a;
                    *d = ((v + 1 + (v >> 8)) >> 8) as u8;
                }
            }
        }
    }
}

fn draw_indicator(
    canvas: &mut Canvas<'_>,
    text: &mut TextRenderer,
    cache: &mut Option<(String, u32, Bitmap)>,
    status: &LiveStatus,
    lay: &Layout,
) -> Rect {
    let line = status.line();
    let px_key = (lay.font_px * 64.0) as u32;
    let fresh = matches!(cache, Some((l, k, _)) if *l == line && *k == px_key);
    if !fresh {
        let bmp = text.render(
            &[Span {
                text: &line,
                rgb: TEXT_RGB,
            }],
            lay.font_px,
            u32::MAX,
        );
        *cache = Some((line, px_key, bmp));
    }
    let Some((_, _, bmp)) = cache.as_ref() else {
        unreachable!("filled above")
    };
    let line_h = text.line_height(lay.font_px);
    let dot_d = (line_h as f32 * 0.6).round().max(4.0);
    let inner_gap = lay.pad;
    let max_w = canvas.w.saturating_sub(2 * lay.margin);
    let w = (lay.pad * 2 + dot_d as u32 + inner_gap + bmp.w).min(max_w);
    // Top right: games tend to keep their own HUD (score, counters) top left.
    let r = Rect {
        x: canvas.w.saturating_sub(lay.margin + w),
        y: lay.margin,
        w,
        h: (line_h + lay.pad).min(canvas.h.saturating_sub(2 * lay.margin)),
    };
    canvas.backdrop(r);
    let cy = r.y as f32 + r.h as f32 / 2.0;
    canvas.dot(
        r.x as f32 + lay.pad as f32 + dot_d / 2.0,
        cy,
        dot_d / 2.0,
        DOT_RGB,
    );
    let tx = r.x + lay.pad + dot_d as u32 + inner_gap;
    // Clipping the text to the box keeps every drawn pixel inside the reported region.
    let ty = i64::from(r.y) + (i64::from(r.h) - i64::from(bmp.h)) / 2;
    canvas.bitmap(bmp, tx, ty, r, |_| 256);
    r
}

/// Stacks comments upwards from the panel's bottom, newest lowest; the backdrop grows with
/// the comments up to the panel's full height, and the oldest scroll out through a fade.
fn draw_comments(
    canvas: &mut Canvas<'_>,
    text: &mut TextRenderer,
    blocks: &mut HashMap<(u64, u32, u32), CachedBlock>,
    comments: &[Comment],
    lay: &Layout,
    now: Instant,
    frame: u64,
) -> Rect {
    let full = lay.panel;
    let inner_w = full.w.saturating_sub(2 * lay.pad).max(1);
    let inner_top = full.y + lay.pad;
    let fade_zone = ((full.h as f32 * TOP_FADE_SHARE) as u32).max(1);
    let px_key = (lay.font_px * 64.0) as u32;
    let panel_bottom = full.y + full.h;
    let mut bottom = i64::from(panel_bottom - lay.pad);
    let mut placed = Vec::new();
    for c in comments.iter().rev() {
        if bottom <= i64::from(inner_top) {
            break;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&c.user, &c.text).hash(&mut h);
        let key = (h.finish(), px_key, inner_w);
        let stale = blocks
            .get(&key)
            .is_none_or(|b| b.user != c.user || b.text != c.text);
        if stale {
            let user = format!("{}: ", c.user);
            let spans = [
                Span {
                    text: &user,
                    rgb: USER_RGB,
                },
                Span {
                    text: &c.text,
                    rgb: TEXT_RGB,
                },
            ];
            let bmp = text.render(&spans, lay.font_px, inner_w);
            let block = CachedBlock {
                user: c.user.clone(),
                text: c.text.clone(),
                bmp,
                last_used: frame,
            };
            blocks.insert(key, block);
        }
        let Some(block) = blocks.get_mut(&key) else {
            continue;
        };
        block.last_used = frame;
        let top = bottom - i64::from(block.bmp.h);
        placed.push((
            key,
            top,
            age_fade(now.saturating_duration_since(c.received)),
        ));
        bottom = top - i64::from(lay.gap);
    }
    let content_top = placed.last().map_or(i64::from(inner_top), |p| p.1);
    let panel_top = (content_top - i64::from(lay.pad)).max(i64::from(full.y)) as u32;
    let panel = Rect {
        x: full.x,
        y: panel_top,
        w: full.w,
        h: panel_bottom - panel_top,
    };
    canvas.backdrop(panel);
    let clip = Rect {
        x: full.x,
        y: inner_top,
        w: full.w,
        h: panel_bottom - inner_top,
    };
    for (key, top, age) in placed {
        let Some(block) = blocks.get(&key) else {
            continue;
        };
        canvas.bitmap(&block.bmp, full.x + lay.pad, top, clip, |y| {
            let pos = ((y - inner_top) as f32 / fade_zone as f32).min(1.0);
            (pos * age * 256.0) as u32
        });
    }
    panel
}

fn age_fade(age: Duration) -> f32 {
    if age <= FRESH_FOR {
        return 1.0;
    }
    let t = ((age - FRESH_FOR).as_secs_f32() / FADE_SPAN.as_secs_f32()).min(1.0);
    1.0 - t * (1.0 - AGED_FADE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn game_frame(w: u32, h: u32, stride: usize) -> Vec<u8> {
        let mut g = vec![0u8; stride * h as usize];
        for y in 0..h as usize {
            for x in 0..w as usize {
                let o = y * stride + x * 4;
                g[o..o + 4].copy_from_slice(&[
                    (x * 7 % 256) as u8,
                    (y * 3 % 256) as u8,
                    ((x + y) % 256) as u8,
                    255,
                ]);
            }
        }
        g
    }

    #[test]
    fn a_bgra_game_frame_comes_out_rgba() {
        let (w, h, stride) = (8u32, 4u32, 40usize);
        let rgba = game_frame(w, h, stride);
        let mut bgra = rgba.clone();
        for px in bgra.chunks_exact_mut(4) {
            px.swap(0, 2);
        }
        let mut o = Overlay::new().unwrap();
        let plain = o
            .compose(&rgba, w, h, stride, &[], &status(), Instant::now())
            .to_vec();
        o.set_game_order(PixelOrder::Bgra);
        let swapped = o
            .compose(&bgra, w, h, stride, &[], &status(), Instant::now())
            .to_vec();
        // Too small for the overlay's drawings: the output is the game's rows, in RGBA.
        let packed: Vec<u8> = rgba
            .chunks_exact(stride)
            .flat_map(|row| row[..w as usize * 4].to_vec())
            .collect();
        assert_eq!(plain, packed);
        assert_eq!(swapped, packed);
    }

    fn status() -> LiveStatus {
        LiveStatus {
            state: "LIVE".into(),
            elapsed: Duration::from_secs(3723),
            bitrate_kbps: 2500.4,
            dropped_frames: 3,
        }
    }

    fn comments() -> Vec<Comment> {
        vec![
            Comment::new("alice", "hello from the chat"),
            Comment::new("小明", "主播好厉害！这局一定能赢，加油加油加油加油加油加油加油"),
            Comment::new("bob", "a long latin comment that certainly needs wrapping inside a narrow panel on the left side"),
        ]
    }

    #[test]
    fn status_line_format() {
        assert_eq!(status().line(), "LIVE  01:02:03  2500 kbps  3 dropped");
        let s = LiveStatus {
            state: "REC".into(),
            elapsed: Duration::ZERO,
            bitrate_kbps: f64::NAN,
            dropped_frames: 0,
        };
        assert_eq!(s.line(), "REC  00:00:00  0 kbps  0 dropped");
    }

    #[test]
    fn draws_only_inside_its_regions_and_never_touches_the_game() {
        let (w, h) = (640u32, 360u32);
        let stride = w as usize * 4 + 64; // padded rows
        let game = game_frame(w, h, stride);
        let before = game.clone();
        let mut ov = Overlay::new().unwrap();
        let out = ov
            .compose(&game, w, h, stride, &comments(), &status(), Instant::now())
            .to_vec();
        assert_eq!(game, before, "compose wrote to the game frame");
        assert_eq!(out.len(), (w * h * 4) as usize);
        let regions = ov.drawn_regions().to_vec();
        assert_eq!(regions.len(), 2, "indicator and panel");
        let mut changed_in = vec![0usize; regions.len()];
        for y in 0..h {
            for x in 0..w {
                let o = (y * w + x) as usize * 4;
                let g = &game[y as usize * stride + x as usize * 4..][..4];
                let p = &out[o..o + 4];
                match regions.iter().position(|r| r.contains(x, y)) {
                    None => assert_eq!(p, g, "pixel ({x},{y}) outside the overlay changed"),
                    Some(i) => changed_in[i] += usize::from(p != g),
                }
            }
        }
        for (r, n) in regions.iter().zip(&changed_in) {
            assert!(
                *n as u32 > r.w * r.h * 9 / 10,
                "region {r:?}: only {n} pixels differ"
            );
        }
        // The indicator's red dot and the comment text are there.
        let red = out
            .chunks_exact(4)
            .filter(|p| p[0] == DOT_RGB[0] && p[1] == DOT_RGB[1] && p[2] == DOT_RGB[2])
            .count();
        assert!(red > 10, "dot pixels: {red}");
        let panel = regions[1];
        let bright = (panel.y..panel.y + panel.h)
            .flat_map(|y| (panel.x..panel.x + panel.w).map(move |x| (x, y)))
            .filter(|&(x, y)| {
                out[(y * w + x) as usize * 4..][..3]
                    .iter()
                    .all(|&c| c > 200)
            })
            .count();
        assert!(bright > 200, "text pixels in the panel: {bright}");
    }

    #[test]
    fn portrait_frames_get_a_wide_panel_inside_the_frame() {
        let (w, h) = (720u32, 1280u32);
        let game = game_frame(w, h, w as usize * 4);
        let mut ov = Overlay::new().unwrap();
        ov.compose(
            &game,
            w,
            h,
            w as usize * 4,
            &comments(),
            &status(),
            Instant::now(),
        );
        let regions = ov.drawn_regions();
        assert_eq!(regions.len(), 2);
        for r in regions {
            assert!(r.x + r.w <= w && r.y + r.h <= h, "{r:?} outside {w}x{h}");
        }
        assert!(
            regions[1].w > w / 2,
            "panel too narrow for portrait: {:?}",
            regions[1]
        );
    }

    #[test]
    fn no_comments_means_no_panel_and_repeat_compose_is_stable() {
        let (w, h) = (320u32, 180u32);
        let game = game_frame(w, h, w as usize * 4);
        let mut ov = Overlay::new().unwrap();
        let now = Instant::now();
        let a = ov
            .compose(&game, w, h, w as usize * 4, &[], &status(), now)
            .to_vec();
        assert_eq!(ov.drawn_regions().len(), 1);
        let b = ov
            .compose(&game, w, h, w as usize * 4, &[], &status(), now)
            .to_vec();
        assert_eq!(a, b);
        let c = ov
            .compose(&game, w, h, w as usize * 4, &comments(), &status(), now)
            .to_vec();
        let d = ov
            .compose(&game, w, h, w as usize * 4, &comments(), &status(), now)
            .to_vec();
        assert_eq!(c, d, "cached comment bitmaps draw the same as fresh ones");
        assert_ne!(a, c);
    }

    #[test]
    fn old_comments_fade() {
        let (w, h) = (640u32, 360u32);
        let game = vec![0u8; (w * h * 4) as usize];
        let mut ov = Overlay::new().unwrap();
        let fresh = vec![Comment::new("u", "WWWWWWWW")];
        let now = Instant::now() + Duration::from_secs(600);
        let bright = |out: &[u8]| out.chunks_exact(4).map(|p| u64::from(p[0])).sum::<u64>();
        let a = bright(ov.compose(
            &game,
            w,
            h,
            w as usize * 4,
            &fresh,
            &status(),
            fresh[0].received,
        ));
        let b = bright(ov.compose(&game, w, h, w as usize * 4, &fresh, &status(), now));
        assert!(b < a, "10-minute-old comment should be dimmer: {b} vs {a}");
    }

    #[test]
    fn bad_input_does_not_panic() {
        let mut ov = Overlay::new().unwrap();
        let st = status();
        // Too short, stride smaller than a row, tiny and empty frames.
        let out = ov.compose(
            &[1u8; 100],
            640,
            360,
            2560,
            &comments(),
            &st,
            Instant::now(),
        );
        assert_eq!(out.len(), 640 * 360 * 4);
        assert_eq!(
            ov.compose(&[7u8; 4000], 100, 10, 10, &[], &st, Instant::now()),
            vec![0u8; 4000]
        );
        assert!(ov
            .compose(&[], 0, 0, 0, &[], &st, Instant::now())
            .is_empty());
        let huge = ov.compose(&[], 100_000, 100_000, 400_000, &[], &st, Instant::now());
        assert!(huge.is_empty());
        let long = LiveStatus {
            state: "X".repeat(500),
            ..st
        };
        let out = ov
            .compose(
                &vec![0; 64 * 64 * 4],
                64,
                64,
                256,
                &comments(),
                &long,
                Instant::now(),
            )
            .len();
        assert_eq!(out, 64 * 64 * 4);
    }
}
