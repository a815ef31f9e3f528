//! The scene front end: size and buffer validation, stride handling, and dispatch to the
//! pattern that does the drawing.

use crosscast_wire::InputEvent;

use crate::aquarium::Aquarium;
use crate::bars::Bars;
use crate::controls::{draw_key_marker, Controls};
use crate::{check_size, sync_flash_for_frame, GameError, Pattern};

/// Opaque black, the sync pattern's resting frame.
const BLACK: [u8; 4] = [0, 0, 0, 255];
/// Opaque white, the sync pattern's flash frame.
const WHITE: [u8; 4] = [255, 255, 255, 255];

/// One pattern's visual state at a given frame size; renders RGBA8 frames on demand.
///
/// Every frame is a pure function of `(frame_no, t_ns)`, the size and the input applied so
/// far: the scene keeps caches (a pre-drawn background, rasterised glyphs) and the input's
/// effects (held keys, the player fish's glide, pellets), never per-frame animation state, so
/// frames can be rendered out of order or skipped without changing any other frame, and a
/// scene that gets no input draws exactly what it always drew.
///
/// Once input is enabled ([`Scene::enable_input`], or the first [`Scene::input`]) every
/// pattern draws the key marker: the top-left [`crate::KEY_MARKER_SIZE`]-pixel square is
/// white while any key is held and black otherwise.
pub struct Scene {
    pattern: Pattern,
    width: u32,
    height: u32,
    kind: Kind,
    /// Where the aquarium draws when the caller's stride is not `width * 4` (tiny-skia needs a
    /// packed buffer); its rows are then copied into the caller's buffer.
    scratch: Vec<u8>,
    /// How long each frame shows (ns), 0 when unknown: the sync pattern flashes on the frame
    /// nearest each beep (see [`sync_flash_for_frame`]).
    frame_period_ns: u64,
    /// The streamer's input, once the game takes it.
    controls: Option<Controls>,
}

/// Per-pattern state.
enum Kind {
    Aquarium(Box<Aquarium>),
    Sync,
    Bars(Bars),
}

impl Kind {
    fn build(pattern: Pattern, width: u32, height: u32) -> Result<Kind, GameError> {
        Ok(match pattern {
            Pattern::Aquarium => Kind::Aquarium(Box::new(Aquarium::new(width, height)?)),
            Pattern::Sync => Kind::Sync,
            Pattern::Bars => Kind::Bars(Bars::new(width, height)),
        })
    }
}

impl Scene {
    /// Creates a scene for `pattern` at `width` x `height` pixels (each even, 16..=4096).
    pub fn new(pattern: Pattern, width: u32, height: u32) -> Result<Scene, GameError> {
        check_size(width, height)?;
        Ok(Scene {
            pattern,
            width,
            height,
            kind: Kind::build(pattern, width, height)?,
            scratch: Vec::new(),
            frame_period_ns: 0,
            controls: None,
        })
    }

    /// Tells the scene how long each frame shows (ns), so that the sync pattern's flash starts
    /// on the frame nearest its beep even when frames do not fall on whole seconds (59.94 fps).
    pub fn set_frame_period(&mut self, period_ns: u64) {
        self.frame_period_ns = period_ns;
    }

    /// From now on, draw the key marker (and, in the aquarium, the player's fish): the game
    /// takes input.
    pub fn enable_input(&mut self) {
        self.controls.get_or_insert_with(Controls::default);
    }

    /// Applies one input event (coordinates in this scene's pixels) at game time `t_ns`: the
    /// time of the next frame to be drawn, so that its effect shows in that frame. Enables
    /// input. The arrow keys move the aquarium's player fish, a left click (or a touch) drops a
    /// food pellet at the pointer, and any key held lights the key marker.
    pub fn input(&mut self, event: &InputEvent, t_ns: u64) {
        let (w, h) = (self.width, self.height);
        self.controls
            .get_or_insert_with(Controls::default)
            .apply(event, t_ns, w, h);
    }

    /// Whether a key is held now (what the key marker shows).
    pub fn key_held(&self) -> bool {
        self.controls.as_ref().is_some_and(Controls::any_key_held)
    }

    /// Changes the frame size; on error the scene keeps its previous size.
    pub fn resize(&mut self, width: u32, height: u32) -> Result<(), GameError> {
        check_size(width, height)?;
        if (width, height) == (self.width, self.height) {
            return Ok(());
        }
        match &mut self.kind {
            Kind::Aquarium(a) => a.resize(width, height)?,
            Kind::Sync => {}
            Kind::Bars(b) => *b = Bars::new(width, height),
        }
        self.width = width;
        self.height = height;
        self.scratch = Vec::new();
        Ok(())
    }

    /// The pattern this scene draws.
    pub fn pattern(&self) -> Pattern {
        self.pattern
    }

    /// Frame width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Frame height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Bytes `render` needs in `dst` at row stride `stride`: `stride * (height - 1) + width * 4`.
    pub fn required_len(&self, stride: usize) -> Result<usize, GameError> {
        let row = self.row_bytes();
        if stride < row {
            return Err(GameError::StrideTooSmall { stride, min: row });
        }
        Ok(stride
            .checked_mul(self.height as usize - 1)
            .and_then(|n| n.checked_add(row))
            .unwrap_or(usize::MAX))
    }

    /// Renders frame `frame_no` at game time `t_ns` (nanoseconds since the game started) into
    /// `dst`: RGBA8 with opaque alpha, `stride` bytes per row. Bytes between `width * 4` and
    /// `stride` in each row, and after the last row, are left untouched.
    pub fn render(
        &mut self,
        dst: &mut [u8],
        stride: usize,
        frame_no: u64,
        t_ns: u64,
    ) -> Result<(), GameError> {
        let needed = self.required_len(stride)?;
        if dst.len() < needed {
            return Err(GameError::BufferTooSmall {
                len: dst.len(),
                needed,
            });
        }
        let row = self.row_bytes();
        let rows = self.height as usize;
        match &mut self.kind {
            Kind::Sync => {
                let px = if sync_flash_for_frame(t_ns, self.frame_period_ns) {
                    WHITE
                } else {
                    BLACK
                };
                for line in dst.chunks_mut(stride).take(rows) {
                    for p in line[..row].chunks_exact_mut(4) {
                        p.copy_from_slice(&px);
                    }
                }
            }
            Kind::Bars(bars) => bars.render(dst, stride),
            Kind::Aquarium(aq) => {
                let controls = self.controls.as_ref();
                if stride == row {
                    aq.render(&mut dst[..row * rows], frame_no, t_ns, controls);
                } else {
                    self.scratch.resize(row * rows, 0);
                    aq.render(&mut self.scratch, frame_no, t_ns, controls);
                    for (d, s) in dst.chunks_mut(stride).zip(self.scratch.chunks_exact(row)) {
                        d[..row].copy_from_slice(s);
                    }
                }
            }
        }
        if let Some(c) = &self.controls {
            draw_key_marker(dst, stride, self.width, self.height, c.any_key_held());
        }
        Ok(())
    }

    fn row_bytes(&self) -> usize {
        self.width as usize * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS_PER_MS: u64 = 1_000_000;

    fn frame(scene: &mut Scene, frame_no: u64, t_ns: u64) -> Vec<u8> {
        let row = scene.width() as usize * 4;
        let mut buf = vec![0x5Au8; row * scene.height() as usize];
        scene.render(&mut buf, row, frame_no, t_ns).expect("render");
        buf
    }

    fn all_pixels(buf: &[u8], px: [u8; 4]) -> bool {
        buf.chunks_exact(4).all(|p| p == px)
    }

    #[test]
    fn sync_is_white_exactly_in_window() {
        let mut s = Scene::new(Pattern::Sync, 64, 36).expect("scene");
        for k in [0u64, 1, 2, 59, 3600] {
            let base = k * 1_000 * NS_PER_MS;
            for (t, white) in [
                (base, true),
                (base + 50 * NS_PER_MS, true),
                (base + 100 * NS_PER_MS - 1, true),
                (base + 100 * NS_PER_MS, false),
                (base + 500 * NS_PER_MS, false),
                (base + 1000 * NS_PER_MS - 1, false),
            ] {
                let f = frame(&mut s, k, t);
                let want = if white { WHITE } else { BLACK };
                assert!(all_pixels(&f, want), "t={t} want white={white}");
            }
        }
        // At 60 fps exactly six frames per second fall in the 100 ms window (0..=83.3 ms).
        let whites = (0..120u64)
            .filter(|&n| {
                let f = frame(&mut s, n, n * 1_000_000_000 / 60);
                all_pixels(&f, WHITE)
            })
            .count();
        assert_eq!(whites, 12);
    }

    #[test]
    fn bars_identical_across_frames_and_opaque() {
        let mut s = Scene::new(Pattern::Bars, 320, 180).expect("scene");
        let a = frame(&mut s, 0, 0);
        let b = frame(&mut s, 1234, 98_765_432_100);
        assert_eq!(a, b);
        assert!(a.chunks_exact(4).all(|p| p[3] == 255));
        // Top-left is the 75% grey bar, the second bar is yellow.
        assert_eq!(&a[..4], &[191, 191, 191, 255]);
        let x = 320 / 7 + 5;
        assert_eq!(&a[x * 4..x * 4 + 4], &[191, 191, 0, 255]);
    }

    #[test]
    fn aquarium_is_deterministic_and_animated() {
        let mut s = Scene::new(Pattern::Aquarium, 320, 180).expect("scene");
        let a = frame(&mut s, 10, 10 * 16_666_667);
        let b = frame(&mut s, 11, 11 * 16_666_667);
        let a2 = frame(&mut s, 10, 10 * 16_666_667);
        assert_ne!(a, b, "consecutive frames must differ");
        assert_eq!(a, a2, "same (frame, time) must give the same frame");
        // A second scene renders the same bytes: no hidden state from earlier frames.
        let mut fresh = Scene::new(Pattern::Aquarium, 320, 180).expect("scene");
        assert_eq!(frame(&mut fresh, 10, 10 * 16_666_667), a);
        assert!(
            a.chunks_exact(4).all(|p| p[3] == 255),
            "alpha must be opaque"
        );
        // Only the counter changes when the time stands still, and only the clock when the
        // counter does.
        let c = frame(&mut s, 99, 10 * 16_666_667);
        assert_ne!(a, c);
        let d = frame(&mut s, 10, 10 * 16_666_667 + 1_000_000);
        assert_ne!(a, d);
    }

    #[test]
    fn aquarium_changes_over_seconds() {
        let mut s = Scene::new(Pattern::Aquarium, 256, 144).expect("scene");
        let frames: Vec<Vec<u8>> = (0..5u64)
            .map(|k| frame(&mut s, k * 60, k * 1_000_000_000))
            .collect();
        for i in 0..frames.len() {
            for j in i + 1..frames.len() {
                let differing = frames[i]
                    .chunks_exact(4)
                    .zip(frames[j].chunks_exact(4))
                    .filter(|(p, q)| p != q)
                    .count();
                // Fish and bubbles move, not just the text: well over 1% of pixels change.
                assert!(
                    differing > 256 * 144 / 100,
                    "frames {i} and {j}: {differing}"
                );
            }
        }
    }

    #[test]
    fn padding_is_untouched_for_every_pattern() {
        for p in Pattern::ALL {
            let (w, h) = (48u32, 20u32);
            let row = w as usize * 4;
            let stride = row + 36;
            let mut s = Scene::new(p, w, h).expect("scene");
            let mut padded = vec![0xA5u8; stride * h as usize + 17];
            s.render(&mut padded, stride, 3, 50_000_000)
                .expect("render");
            let packed = frame(&mut s, 3, 50_000_000);
            for (y, line) in padded.chunks(stride).enumerate() {
                if y < h as usize {
                    assert_eq!(&line[..row], &packed[y * row..(y + 1) * row], "{p} row {y}");
                    assert!(line[row..].iter().all(|&b| b == 0xA5), "{p} pad of row {y}");
                } else {
                    assert!(line.iter().all(|&b| b == 0xA5), "{p} tail");
                }
            }
        }
    }

    #[test]
    fn minimal_buffer_without_last_row_padding_is_accepted() {
        let (w, h) = (16u32, 16u32);
        let stride = 16 * 4 + 8;
        let mut s = Scene::new(Pattern::Aquarium, w, h).expect("scene");
        let needed = s.required_len(stride).expect("len");
        assert_eq!(needed, stride * 15 + 64);
        let mut buf = vec![0u8; needed];
        assert_eq!(s.render(&mut buf, stride, 0, 0), Ok(()));
    }

    #[test]
    fn invalid_sizes_and_buffers_are_errors() {
        for (w, h) in [
            (0, 720),
            (1280, 0),
            (15, 16),
            (1279, 720),
            (8192, 720),
            (8, 8),
        ] {
            assert_eq!(
                Scene::new(Pattern::Sync, w, h).err(),
                Some(GameError::InvalidSize {
                    width: w,
                    height: h
                })
            );
        }
        let mut s = Scene::new(Pattern::Bars, 32, 16).expect("scene");
        assert_eq!(
            s.resize(33, 16),
            Err(GameError::InvalidSize {
                width: 33,
                height: 16
            })
        );
        assert_eq!((s.width(), s.height()), (32, 16));
        let mut buf = vec![0u8; 32 * 4 * 16];
        assert_eq!(
            s.render(&mut buf, 100, 0, 0),
            Err(GameError::StrideTooSmall {
                stride: 100,
                min: 128
            })
        );
        assert_eq!(
            s.render(&mut buf[..100], 128, 0, 0),
            Err(GameError::BufferTooSmall {
                len: 100,
                needed: 32 * 4 * 16
            })
        );
        assert!(matches!(
            s.render(&mut buf, usize::MAX, 0, 0),
            Err(GameError::BufferTooSmall { .. })
        ));
    }

    fn key(code: u32, pressed: bool) -> InputEvent {
        InputEvent::Key { code, pressed }
    }

    /// Luma (BT.709) of the pixel at (x, y) of a packed frame `width` wide.
    fn luma(buf: &[u8], width: u32, x: u32, y: u32) -> f32 {
        let at = ((y * width + x) * 4) as usize;
        let p = &buf[at..at + 3];
        0.2126 * f32::from(p[0]) + 0.7152 * f32::from(p[1]) + 0.0722 * f32::from(p[2])
    }

    /// The brightest and darkest pixels of the key marker's square.
    fn marker_range(buf: &[u8], width: u32) -> (f32, f32) {
        let m = crate::KEY_MARKER_SIZE;
        let mut lo = f32::MAX;
        let mut hi = f32::MIN;
        for y in 0..m {
            for x in 0..m {
                let l = luma(buf, width, x, y);
                lo = lo.min(l);
                hi = hi.max(l);
            }
        }
        (lo, hi)
    }

    #[test]
    fn the_key_marker_shows_while_a_key_is_held_in_every_pattern() {
        let (w, h) = (320u32, 180u32);
        for p in Pattern::ALL {
            let mut s = Scene::new(p, w, h).expect("scene");
            s.enable_input();
            // Sync flashes white at t = 0: the corner stays dark without a key all the same.
            for t in [0, 50 * NS_PER_MS, 500 * NS_PER_MS] {
                let (_, hi) = marker_range(&frame(&mut s, 1, t), w);
                assert!(hi <= 100.0, "{p}: corner luma {hi} at {t} with no key held");
            }
            s.input(&key(30, true), NS_PER_MS);
            assert!(s.key_held());
            let f = frame(&mut s, 2, NS_PER_MS);
            let (lo, _) = marker_range(&f, w);
            assert_eq!(lo, 255.0, "{p}: a solid white marker while a key is held");
            // Just the square: the pixels beside it are the scene's.
            assert!(luma(&f, w, 32, 40) < 255.0 || p == Pattern::Sync, "{p}");
            s.input(&key(KEY_LEFT_TEST, true), 2 * NS_PER_MS);
            s.input(&key(30, false), 2 * NS_PER_MS);
            let (lo, _) = marker_range(&frame(&mut s, 3, 2 * NS_PER_MS), w);
            assert_eq!(lo, 255.0, "{p}: another key is still held");
            s.input(&key(KEY_LEFT_TEST, false), 3 * NS_PER_MS);
            let (_, hi) = marker_range(&frame(&mut s, 4, 3 * NS_PER_MS), w);
            assert!(
                hi <= 100.0,
                "{p}: the marker goes when the last key is released"
            );
            s.input(&key(30, true), 4 * NS_PER_MS);
            s.input(&InputEvent::Focus { focused: false }, 4 * NS_PER_MS);
            let (_, hi) = marker_range(&frame(&mut s, 5, 4 * NS_PER_MS), w);
            assert!(hi <= 100.0, "{p}: and when focus goes");
        }
    }

    const KEY_LEFT_TEST: u32 = crate::KEY_LEFT;

    #[test]
    fn the_aquarium_corner_stays_dark_over_time_with_input_enabled() {
        let (w, h) = (1280u32, 720u32);
        let mut s = Scene::new(Pattern::Aquarium, w, h).expect("scene");
        s.enable_input();
        for k in 0..40u64 {
            let t = k * 250 * NS_PER_MS;
            let (_, hi) = marker_range(&frame(&mut s, k, t), w);
            assert!(hi <= 100.0, "corner luma {hi} at {t} ns");
        }
    }

    /// The centre of the player fish's fins (the only magenta in the tank), in pixels.
    fn player_centre(buf: &[u8], width: u32) -> (f32, f32) {
        let (mut sx, mut sy, mut n) = (0f32, 0f32, 0f32);
        for (i, p) in buf.chunks_exact(4).enumerate() {
            if p[..3] == [255, 40, 170] {
                sx += (i as u32 % width) as f32;
                sy += (i as u32 / width) as f32;
                n += 1.0;
            }
        }
        assert!(n > 20.0, "the player fish is drawn ({n} fin pixels)");
        (sx / n, sy / n)
    }

    #[test]
    fn the_arrow_keys_move_the_player_fish() {
        let (w, h) = (640u32, 360u32);
        let sec = 1_000 * NS_PER_MS;
        let mut s = Scene::new(Pattern::Aquarium, w, h).expect("scene");
        s.enable_input();
        let (x0, y0) = player_centre(&frame(&mut s, 0, sec), w);
        s.input(&key(crate::KEY_RIGHT, true), sec);
        let (x1, y1) = player_centre(&frame(&mut s, 60, 2 * sec), w);
        // Held for a second: about PLAYER_SPEED of the width further right.
        let want = crate::PLAYER_SPEED * w as f32;
        assert!(
            (x1 - x0 - want).abs() < 0.2 * want && (y1 - y0).abs() < 3.0,
            "moved from ({x0}, {y0}) to ({x1}, {y1}), want +{want} px"
        );
        s.input(&key(crate::KEY_RIGHT, false), 2 * sec);
        s.input(&key(crate::KEY_DOWN, true), 2 * sec);
        let (x2, y2) = player_centre(&frame(&mut s, 90, 2 * sec + sec / 2), w);
        assert!(
            y2 > y1 + 20.0 && (x2 - x1).abs() < 3.0,
            "({x1}, {y1}) -> ({x2}, {y2})"
        );
        s.input(&key(crate::KEY_DOWN, false), 3 * sec);
        let still = frame(&mut s, 120, 4 * sec);
        let (x3, y3) = player_centre(&still, w);
        // At rest it only wags its tail.
        let (x4, y4) = player_centre(&frame(&mut s, 180, 5 * sec), w);
        assert!(
            (x4 - x3).abs() < 3.0 && (y4 - y3).abs() < 3.0,
            "drifted at rest"
        );
        assert!(x3 > x0, "it stays where it was taken");
        // The other fish: no key changes them; a scene without input has no player fish.
        let mut plain = Scene::new(Pattern::Aquarium, w, h).expect("scene");
        assert!(!frame(&mut plain, 0, sec)
            .chunks_exact(4)
            .any(|p| p[..3] == [255, 40, 170]));
    }

    #[test]
    fn a_left_click_drops_food_at_the_click_point() {
        let (w, h) = (640u32, 360u32);
        let sec = 1_000 * NS_PER_MS;
        let mut s = Scene::new(Pattern::Aquarium, w, h).expect("scene");
        let (cx, cy) = (200u32, 100u32);
        s.input(
            &InputEvent::PointerMotion {
                x: crosscast_wire::Fixed::from_f64(f64::from(cx) + 0.5),
                y: crosscast_wire::Fixed::from_f64(f64::from(cy) + 0.5),
            },
            sec,
        );
        s.input(
            &InputEvent::PointerButton {
                button: crosscast_wire::input::BTN_LEFT,
                pressed: true,
            },
            sec,
        );
        let f = frame(&mut s, 60, sec);
        // A bright square of at least 12x12 around the click point, in the very next frame.
        for y in cy - 6..cy + 6 {
            for x in cx - 6..cx + 6 {
                assert!(luma(&f, w, x, y) > 200.0, "({x}, {y}) is not bright");
            }
        }
        // Then it sinks.
        let later = frame(&mut s, 300, 5 * sec);
        assert!(
            luma(&later, w, cx, cy - 5) < 200.0,
            "still at the click point after 4 s"
        );
        let drop = (4.0 * crate::PELLET_SINK * h as f32) as u32;
        assert!(
            luma(&later, w, cx, cy + drop) > 200.0,
            "not {drop} px lower after 4 s"
        );
    }

    #[test]
    fn input_is_deterministic() {
        let script = |s: &mut Scene| {
            s.input(&key(crate::KEY_UP, true), 100 * NS_PER_MS);
            s.input(&key(crate::KEY_UP, false), 700 * NS_PER_MS);
        };
        let mut a = Scene::new(Pattern::Aquarium, 320, 180).expect("scene");
        let mut b = Scene::new(Pattern::Aquarium, 320, 180).expect("scene");
        script(&mut a);
        script(&mut b);
        assert_eq!(
            frame(&mut a, 70, 1_000 * NS_PER_MS),
            frame(&mut b, 70, 1_000 * NS_PER_MS)
        );
    }

    #[test]
    fn resize_renders_at_new_size() {
        for p in Pattern::ALL {
            let mut s = Scene::new(p, 64, 36).expect("scene");
            s.resize(128, 72).expect("resize");
            let f = frame(&mut s, 1, 1_000);
            assert_eq!(f.len(), 128 * 72 * 4);
            assert!(f.chunks_exact(4).all(|px| px[3] == 255), "{p}");
            let mut fresh = Scene::new(p, 128, 72).expect("scene");
            assert_eq!(frame(&mut fresh, 1, 1_000), f, "{p}");
        }
    }
}
