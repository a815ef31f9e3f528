//! The aquarium: water, sand, rocks and light shafts drawn once per size into a cached
//! background, then per frame seaweed, bubbles, fish and the counter/clock panel on top.
//!
//! Every moving thing is a closed-form function of the game time (sines, wrapped ramps), so a
//! frame depends only on `(frame_no, t_ns)`, and the per-frame work is a few hundred small
//! anti-aliased paths plus one copy of the background.

use std::f32::consts::PI;
use std::f64::consts::TAU;
use std::fmt::Write as _;

use tiny_skia::{
    Color, FillRule, GradientStop, LinearGradient, Paint, Path, PathBuilder, Pixmap, PixmapMut,
    Point, Rect, SpreadMode, Stroke, Transform,
};

use crate::controls::{Controls, KEY_MARKER_SIZE};
use crate::raster::{Canvas, Sprite, SpriteCache};
use crate::synth::BLIP_PERIOD_MS;
use crate::text::TextPainter;
use crate::{unit, GameError, NS_PER_SEC};

/// Seed of the scene's layout (fish, weeds, bubbles, pebbles).
const SEED: u64 = 0xA0_0A;
/// The design size: object sizes are given at 1280x720 and scaled.
const DESIGN_W: f32 = 1280.0;
/// See [`DESIGN_W`].
const DESIGN_H: f32 = 720.0;
/// Top of the sand, as a fraction of the height.
const SAND_TOP: f32 = 0.86;
/// Horizontal position of the aerator stone, as a fraction of the width.
const AERATOR_X: f32 = 0.82;
/// How fast the aerator's bubbles rise, in heights per second.
const AERATOR_RISE: f32 = 0.2;
/// Fish in the tank.
const FISH: usize = 8;
/// Seaweed strands.
const WEEDS: usize = 10;
/// Free-floating bubbles.
const BUBBLES: usize = 26;
/// Phase lag of the sway wave from a strand's root to its tip, in radians.
const WEED_WAVE: f64 = 5.4;
/// Sideways sway of a strand's tip at the design size, in pixels.
const WEED_SWAY: f32 = 38.0;

/// Side of a food pellet at the design size and its minimum, in pixels.
const PELLET_SIDE: f32 = 16.0;
/// A pellet's inside: bright yellow (luma about 225), unlike anything else in the tank.
const PELLET_FILL: [u8; 4] = [255, 230, 90, 255];
/// A pellet's one-pixel rim, so it reads as an object against bright sand.
const PELLET_RIM: [u8; 4] = [200, 110, 20, 255];
/// The player's fish: larger than any other, white with black stripes and magenta fins.
const PLAYER_LIVERY: Livery = Livery {
    body: [245, 245, 255],
    fin: [255, 40, 170],
    stripes: Some([20, 20, 30]),
};
/// Half body length of the player's fish at the design size.
const PLAYER_SIZE: f32 = 64.0;

/// A fish's colours.
#[derive(Clone, Copy)]
struct Livery {
    body: [u8; 3],
    /// Fins, tail and outline.
    fin: [u8; 3],
    stripes: Option<[u8; 3]>,
}

/// The fish colours, cycled through the fish.
const PALETTE: [Livery; 7] = [
    // clownfish
    Livery {
        body: [255, 128, 20],
        fin: [235, 80, 10],
        stripes: Some([250, 250, 250]),
    },
    // yellow tang
    Livery {
        body: [255, 214, 50],
        fin: [230, 170, 20],
        stripes: None,
    },
    // blue tang
    Livery {
        body: [40, 110, 230],
        fin: [20, 50, 150],
        stripes: Some([255, 220, 60]),
    },
    // red snapper
    Livery {
        body: [230, 60, 70],
        fin: [170, 30, 50],
        stripes: None,
    },
    // royal gramma-ish
    Livery {
        body: [160, 90, 220],
        fin: [110, 50, 170],
        stripes: Some([255, 200, 80]),
    },
    // green chromis
    Livery {
        body: [90, 210, 140],
        fin: [40, 150, 90],
        stripes: None,
    },
    // pink
    Livery {
        body: [255, 130, 180],
        fin: [210, 80, 140],
        stripes: Some([255, 240, 250]),
    },
];

/// A fish's fixed traits; its position is computed from the time.
struct Fish {
    /// Half body length at the design size, in pixels.
    size: f32,
    body: Color,
    fin: Color,
    belly: Color,
    stripe: Option<Color>,
    x_rate: f64,
    x_phase: f64,
    y_base: f32,
    y_amp: f32,
    y_rate: f64,
    y_phase: f64,
    wag_rate: f64,
    wag_phase: f64,
}

/// A seaweed strand rooted in the sand.
struct Weed {
    x: f32,
    height: f32,
    width: f32,
    /// Colour at the strand's edges; its middle is lighter.
    colour: [u8; 3],
    sway_rate: f64,
    sway_phase: f64,
}

/// A free bubble rising from the sand in a wobbling column.
struct Bubble {
    x: f32,
    radius: f32,
    /// Rise speed in heights per second.
    speed: f32,
    offset: f32,
    wobble_phase: f64,
}

/// The fish outline and parts, in fish space: nose at (1, 0), tail joint near (-0.75, 0).
struct FishShapes {
    body: Path,
    tail: Path,
    dorsal: Path,
    pelvic: Path,
    belly: Path,
    /// The body grown a little, drawn underneath in the fin colour as an outline.
    outline: Path,
    stripes: Path,
    eye: Path,
    pupil: Path,
    glint: Path,
}

/// The aquarium at one frame size.
pub(crate) struct Aquarium {
    width: u32,
    height: u32,
    /// Size factor from the design size.
    scale: f32,
    background: Pixmap,
    fish: Vec<Fish>,
    /// The fish the arrow keys move (drawn only once the game takes input).
    player: Fish,
    weeds: Vec<Weed>,
    bubbles: Vec<Bubble>,
    shapes: FishShapes,
    /// Pre-drawn bubbles by quantised radius.
    sprites: SpriteCache,
    text: TextPainter,
    line: String,
    /// How far right the panel moves to clear the key marker (0 without input).
    panel_inset: f32,
}

impl Aquarium {
    pub(crate) fn new(width: u32, height: u32) -> Result<Aquarium, GameError> {
        let scale = scale_for(width, height);
        Ok(Aquarium {
            width,
            height,
            scale,
            background: background(width, height, scale)?,
            fish: make_fish(),
            player: player_fish(),
            weeds: make_weeds(),
            bubbles: make_bubbles(),
            shapes: fish_shapes().ok_or(GameError::Drawing("fish outline"))?,
            sprites: SpriteCache::new(),
            text: TextPainter::new(text_px(height)).map_err(GameError::Font)?,
            line: String::with_capacity(32),
            panel_inset: 0.0,
        })
    }

    pub(crate) fn resize(&mut self, width: u32, height: u32) -> Result<(), GameError> {
        let scale = scale_for(width, height);
        // Build everything fallible first so that an error leaves the old size intact.
        let background = background(width, height, scale)?;
        let text = TextPainter::new(text_px(height)).map_err(GameError::Font)?;
        self.width = width;
        self.height = height;
        self.scale = scale;
        self.background = background;
        self.text = text;
        // Bubble rims are drawn in scaled pixels, so the sprites belong to the old size.
        self.sprites = SpriteCache::new();
        Ok(())
    }

    /// Draws a frame into `buf`, exactly `width * height * 4` packed RGBA bytes; with
    /// `controls` (the game takes input) also the player's fish and the food pellets, and the
    /// panel moves right of the key marker.
    pub(crate) fn render(
        &mut self,
        buf: &mut [u8],
        frame_no: u64,
        t_ns: u64,
        controls: Option<&Controls>,
    ) {
        self.panel_inset = if controls.is_some() {
            KEY_MARKER_SIZE as f32
        } else {
            0.0
        };
        buf.copy_from_slice(self.background.data());
        let t = t_ns as f64 / NS_PER_SEC as f64;
        {
            let mut canvas = Canvas::new(buf, self.width as usize, self.height as usize);
            self.draw_weeds(&mut canvas, t);
            self.draw_bubbles(&mut canvas, t);
            self.draw_aerator_bubbles(&mut canvas, t_ns);
        }
        let first_line = self.format_lines(frame_no, t_ns);
        if let Some(mut pm) = PixmapMut::from_bytes(buf, self.width, self.height) {
            self.draw_fish(&mut pm, t);
            if let Some(c) = controls {
                self.draw_player(&mut pm, c, t_ns, t);
            }
        }
        if let Some(c) = controls {
            self.draw_pellets(buf, c, t_ns);
        }
        if let Some(mut pm) = PixmapMut::from_bytes(buf, self.width, self.height) {
            self.draw_panel(&mut pm, first_line);
        }
        self.draw_text(buf, first_line);
    }

    fn w(&self) -> f32 {
        self.width as f32
    }

    fn h(&self) -> f32 {
        self.height as f32
    }

    /// Seaweed, filled row by row: each strand is a tapering band whose centre line sways with
    /// a wave travelling up the strand.
    fn draw_weeds(&self, canvas: &mut Canvas<'_>, t: f64) {
        let s = self.scale;
        let base_y = self.h() * (SAND_TOP + 0.04);
        for weed in &self.weeds {
            let len = weed.height * self.h();
            let top = base_y - len;
            let first = top.floor().max(0.0) as usize;
            let last = (base_y.ceil().max(0.0) as usize).min(canvas.height());
            let edge = weed.colour;
            let centre = weed.colour.map(|c| c.saturating_add(45));
            // The sway wave's phase is linear in the row, so its sine is stepped by rotation
            // instead of evaluated per row.
            let phase0 = weed.sway_rate * t + weed.sway_phase
                - WEED_WAVE * f64::from((base_y - first as f32 - 0.5) / len);
            let (mut sin, mut cos) = phase0.sin_cos();
            let (step_sin, step_cos) = (WEED_WAVE / f64::from(len)).sin_cos();
            for row in first..last {
                let y = row as f32 + 0.5;
                let f = ((base_y - y) / len).clamp(0.0, 1.0);
                // Partial coverage of the rows holding the tip and the root.
                let vcov = ((row as f32 + 1.0 - top).min(1.0)).min(base_y - row as f32);
                let x = weed.x * self.w() + WEED_SWAY * s * f * f.sqrt() * sin as f32;
                let half = 0.5 * weed.width * s * (1.0 - 0.85 * f);
                canvas.span(row, x - half, x + half, vcov.clamp(0.0, 1.0), edge, centre);
                (sin, cos) = (
                    sin * step_cos + cos * step_sin,
                    cos * step_cos - sin * step_sin,
                );
            }
        }
    }

    fn draw_bubbles(&mut self, canvas: &mut Canvas<'_>, t: f64) {
        let s = self.scale;
        let (w, h) = (self.w(), self.h());
        let bottom = h * SAND_TOP;
        for b in &self.bubbles {
            let r = b.radius * s;
            // Rise from the sand to above the top, then start again: a wrapped ramp in time.
            let travel = bottom + 4.0 * r;
            let risen = ((f64::from(b.speed) * f64::from(h) * t + f64::from(b.offset * travel))
                % f64::from(travel)) as f32;
            let y = bottom + r - risen;
            let x = b.x * w + 6.0 * s * (2.2 * t + b.wobble_phase).sin() as f32;
            blit_bubble(&mut self.sprites, canvas, x, y, r, s);
        }
    }

    fn draw_aerator_bubbles(&mut self, canvas: &mut Canvas<'_>, t_ns: u64) {
        let s = self.scale;
        let (w, h) = (self.w(), self.h());
        let period_ns = BLIP_PERIOD_MS * 1_000_000;
        let x0 = AERATOR_X * w;
        let y0 = h * (SAND_TOP + 0.02);
        let latest = t_ns / period_ns;
        // A release reaches the top in 1 / AERATOR_RISE seconds; older ones are gone.
        let visible = (1.0 / AERATOR_RISE * 1000.0) as u64 / BLIP_PERIOD_MS + 2;
        for j in latest.saturating_sub(visible)..=latest {
            let age = (t_ns - j * period_ns) as f32 / NS_PER_SEC as f32;
            for (k, (radius, lag)) in [(11.0f32, 0.0f32), (7.0, 0.12), (5.0, 0.22)]
                .into_iter()
                .enumerate()
            {
                let a = age - lag;
                if a < 0.0 {
                    continue;
                }
                let y = y0 - a * AERATOR_RISE * h * (1.0 + 0.15 * k as f32);
                if y < -20.0 * s {
                    continue;
                }
                let x = x0 + 5.0 * s * (a * 6.0 + k as f32).sin();
                // Bubbles grow a little as they rise into lower pressure.
                let r = radius * s * (1.0 + 0.15 * a.min(3.0));
                blit_bubble(&mut self.sprites, canvas, x, y, r, s);
            }
        }
    }

    fn draw_fish(&self, pm: &mut PixmapMut<'_>, t: f64) {
        let s = self.scale;
        for fish in &self.fish {
            let size = fish.size * s;
            let half_span = (0.5 * self.w() - 1.6 * size).max(0.0);
            // x follows a rounded triangle wave: steady speed mid-tank, slowing to turn at the
            // walls. The fish faces its direction of travel and flips through edge-on.
            let theta = fish.x_rate * t + fish.x_phase;
            let (sin_t, cos_t) = theta.sin_cos();
            let shape_norm = 0.97f64.asin();
            let x = 0.5 * self.w() + half_span * ((0.97 * sin_t).asin() / shape_norm) as f32;
            let vx = f64::from(half_span) * fish.x_rate * 0.97 * cos_t
                / (1.0 - 0.9409 * sin_t * sin_t).sqrt()
                / shape_norm;
            let facing = (3.0 * cos_t).clamp(-1.0, 1.0) as f32;
            let flip = if facing.abs() < 0.12 {
                0.12f32.copysign(facing)
            } else {
                facing
            };

            let y_theta = fish.y_rate * t + fish.y_phase;
            let y = self.h() * (fish.y_base + fish.y_amp * y_theta.sin() as f32)
                + 3.0 * s * (2.3 * t + fish.x_phase).sin() as f32;
            let vy = f64::from(self.h()) * f64::from(fish.y_amp) * fish.y_rate * y_theta.cos();
            // Nose up or down along the path; mirrored fish rotate the other way, and the tilt
            // fades out while the fish is edge-on in a turn.
            let tilt = (vy.atan2(vx.abs() + 1.0) as f32).clamp(-0.45, 0.45) * facing.abs();
            let tilt_deg = tilt * facing.signum() * 180.0 / PI;

            let wag = 20.0 * (fish.wag_rate * t + fish.wag_phase).sin() as f32;
            self.draw_one_fish(pm, fish, x, y, flip * size, size, tilt_deg, wag);
        }
    }

    /// The player's fish, where the arrow keys have taken it, facing the way it last swam.
    fn draw_player(&self, pm: &mut PixmapMut<'_>, controls: &Controls, t_ns: u64, t: f64) {
        let (fx, fy) = controls.player_at(t_ns);
        let size = self.player.size * self.scale;
        let (x, y) = (fx * self.w(), fy * self.h());
        // Swimming fish beat their tails faster.
        let rate = if controls.swimming() { 16.0 } else { 6.0 };
        let wag = 20.0 * (rate * t).sin() as f32;
        self.draw_one_fish(
            pm,
            &self.player,
            x,
            y,
            controls.facing() * size,
            size,
            0.0,
            wag,
        );
    }

    /// Food pellets: solid bright squares, centred on where they were dropped when new, then
    /// sinking; drawn whole-pixel so that the click point is exactly covered.
    fn draw_pellets(&self, buf: &mut [u8], controls: &Controls, t_ns: u64) {
        let side = ((PELLET_SIDE * self.scale).round() as i64).max(PELLET_SIDE as i64);
        let (w, h) = (i64::from(self.width), i64::from(self.height));
        for p in controls.pellets(t_ns) {
            let cx = (p.x * self.w()).floor() as i64;
            let cy = (p.y_at(t_ns) * self.h()).floor() as i64;
            let (x0, y0) = (cx - side / 2, cy - side / 2);
            for y in y0.max(0)..(y0 + side).min(h) {
                for x in x0.max(0)..(x0 + side).min(w) {
                    let edge = x == x0 || y == y0 || x == x0 + side - 1 || y == y0 + side - 1;
                    let px = if edge { PELLET_RIM } else { PELLET_FILL };
                    let at = ((y * w + x) * 4) as usize;
                    buf[at..at + 4].copy_from_slice(&px);
                }
            }
        }
    }

    /// Draws one fish centred on (`x`, `y`): `sx` is its horizontal scale (negative faces
    /// left), `sy` its vertical one, `tilt_deg` its rotation and `wag` its tail angle.
    #[allow(clippy::too_many_arguments)]
    fn draw_one_fish(
        &self,
        pm: &mut PixmapMut<'_>,
        fish: &Fish,
        x: f32,
        y: f32,
        sx: f32,
        sy: f32,
        tilt_deg: f32,
        wag: f32,
    ) {
        let sh = &self.shapes;
        let tf = Transform::from_translate(x, y)
            .pre_rotate(tilt_deg)
            .pre_scale(sx, sy);
        // Fins, tail and the outline share a colour, so they go out as one path: the
        // rasteriser's cost is mostly per call, not per pixel, at these sizes.
        let mut fins = PathBuilder::with_capacity(40, 120);
        fins.push_path(&sh.outline);
        fins.push_path(&sh.dorsal);
        for (part, pivot, angle) in [
            (&sh.tail, (-0.72, 0.0), wag),
            (&sh.pelvic, (0.0, 0.4), 0.5 * wag),
        ] {
            let turn = Transform::from_rotate_at(angle, pivot.0, pivot.1);
            if let Some(p) = part.clone().transform(turn) {
                fins.push_path(&p);
            }
        }
        if let Some(fins) = fins.finish() {
            pm.fill_path(&fins, &solid(fish.fin), FillRule::Winding, tf, None);
        }
        pm.fill_path(&sh.body, &solid(fish.body), FillRule::Winding, tf, None);
        pm.fill_path(&sh.belly, &solid(fish.belly), FillRule::Winding, tf, None);
        if let Some(stripe) = fish.stripe {
            pm.fill_path(&sh.stripes, &solid(stripe), FillRule::Winding, tf, None);
        }
        for (part, c) in [
            (&sh.eye, rgb(250, 250, 250)),
            (&sh.pupil, rgb(10, 10, 20)),
            (&sh.glint, rgb(255, 255, 255)),
        ] {
            pm.fill_path(part, &solid(c), FillRule::Winding, tf, None);
        }
    }

    /// Size of the counter/clock panel: (x, y, width, height, padding).
    fn panel_box(&self, chars: usize) -> (f32, f32, f32, f32, f32) {
        let pad = (10.0 * self.scale).max(2.0);
        let margin = (14.0 * self.scale).max(1.0);
        let w = self.text.width(chars) as f32 + 2.0 * pad;
        let h = 2.0 * self.text.line_height() as f32 + 2.0 * pad;
        (self.panel_inset + margin, margin, w, h, pad)
    }

    /// Writes the panel's two lines into `self.line`; returns the length of the first.
    fn format_lines(&mut self, frame_no: u64, t_ns: u64) -> usize {
        let ms = t_ns / 1_000_000;
        self.line.clear();
        // Writing to a String cannot fail.
        let _ = write!(self.line, "frame {frame_no:>9}");
        let first = self.line.len();
        let _ = write!(
            self.line,
            "clock {:02}:{:02}.{:03}",
            ms / 60_000,
            ms / 1_000 % 60,
            ms % 1_000
        );
        first
    }

    /// Characters in the longer panel line (the text is ASCII).
    fn panel_chars(&self, first_line: usize) -> usize {
        first_line.max(self.line.len() - first_line)
    }

    fn draw_panel(&self, pm: &mut PixmapMut<'_>, first_line: usize) {
        let (x, y, w, h, pad) = self.panel_box(self.panel_chars(first_line));
        if let Some(path) = rounded_rect(x, y, w, h, pad) {
            let shade = solid(Color::from_rgba8(0, 12, 30, 165));
            pm.fill_path(
                &path,
                &shade,
                FillRule::Winding,
                Transform::identity(),
                None,
            );
        }
    }

    fn draw_text(&mut self, buf: &mut [u8], first_line: usize) {
        let (x, y, _, _, pad) = self.panel_box(self.panel_chars(first_line));
        let (x, y) = ((x + pad) as i32, (y + pad) as i32);
        let lh = self.text.line_height();
        let width = self.width as usize;
        let (top, bottom) = self.line.split_at(first_line);
        self.text.draw(buf, width, x, y, top, [255, 255, 255]);
        self.text
            .draw(buf, width, x, y + lh, bottom, [255, 230, 120]);
    }
}

/// Object size factor: the smaller of the two axes' ratios to the design size.
fn scale_for(width: u32, height: u32) -> f32 {
    (width as f32 / DESIGN_W).min(height as f32 / DESIGN_H)
}

/// Pixel size of the panel text: legible at any size, about 30 px at 720p.
fn text_px(height: u32) -> f32 {
    (height as f32 / 24.0).clamp(8.0, 120.0)
}

fn rgb(r: u8, g: u8, b: u8) -> Color {
    Color::from_rgba8(r, g, b, 255)
}

fn colour(c: [u8; 3]) -> Color {
    rgb(c[0], c[1], c[2])
}

/// A colour `f` of the way from `c` to white.
fn lighten(c: [u8; 3], f: f32) -> Color {
    let l = |v: u8| (v as f32 + (255.0 - v as f32) * f).round() as u8;
    rgb(l(c[0]), l(c[1]), l(c[2]))
}

fn solid(c: Color) -> Paint<'static> {
    let mut p = Paint::default();
    p.set_color(c);
    p.anti_alias = true;
    p
}

/// Blits a bubble of radius `r` centred on (`x`, `y`), snapped to whole pixels (bubbles move
/// slowly enough that it does not show), from a sprite drawn with tiny-skia on first use.
fn blit_bubble(sprites: &mut SpriteCache, canvas: &mut Canvas<'_>, x: f32, y: f32, r: f32, s: f32) {
    // Quarter-pixel radius steps: smooth growth, a bounded number of sprites.
    let key = (r * 4.0).round().max(1.0) as u32;
    let sprite = sprites.get(key, || {
        let r = key as f32 / 4.0;
        let size = (2.0 * r + 2.0 * s + 4.0).ceil() as u32;
        let mut pm = Pixmap::new(size, size)?;
        let c = size as f32 / 2.0;
        draw_bubble(&mut pm.as_mut(), c, c, r, s);
        Some(Sprite::from_pixmap(pm))
    });
    if let Some(sprite) = sprite {
        let half = sprite.width() as f32 / 2.0;
        canvas.blit(sprite, (x - half).round() as i32, (y - half).round() as i32);
    }
}

/// A bubble: a faint body, a bright rim and a highlight.
fn draw_bubble(pm: &mut PixmapMut<'_>, x: f32, y: f32, r: f32, s: f32) {
    let id = Transform::identity();
    if let Some(c) = PathBuilder::from_circle(x, y, r) {
        pm.fill_path(
            &c,
            &solid(Color::from_rgba8(200, 235, 255, 50)),
            FillRule::Winding,
            id,
            None,
        );
        let rim = Stroke {
            width: (1.4 * s).max(0.6),
            ..Stroke::default()
        };
        pm.stroke_path(
            &c,
            &solid(Color::from_rgba8(225, 245, 255, 180)),
            &rim,
            id,
            None,
        );
    }
    if let Some(g) = PathBuilder::from_circle(x - 0.35 * r, y - 0.35 * r, 0.25 * r) {
        pm.fill_path(
            &g,
            &solid(Color::from_rgba8(255, 255, 255, 210)),
            FillRule::Winding,
            id,
            None,
        );
    }
}

fn rounded_rect(x: f32, y: f32, w: f32, h: f32, r: f32) -> Option<Path> {
    let mut pb = PathBuilder::new();
    pb.move_to(x + r, y);
    pb.line_to(x + w - r, y);
    pb.quad_to(x + w, y, x + w, y + r);
    pb.line_to(x + w, y + h - r);
    pb.quad_to(x + w, y + h, x + w - r, y + h);
    pb.line_to(x + r, y + h);
    pb.quad_to(x, y + h, x, y + h - r);
    pb.line_to(x, y + r);
    pb.quad_to(x, y, x + r, y);
    pb.close();
    pb.finish()
}

fn oval(cx: f32, cy: f32, rx: f32, ry: f32) -> Option<Path> {
    PathBuilder::from_oval(Rect::from_xywh(cx - rx, cy - ry, 2.0 * rx, 2.0 * ry)?)
}

fn fish_shapes() -> Option<FishShapes> {
    let mut body = PathBuilder::new();
    body.move_to(1.0, 0.04);
    body.cubic_to(0.85, -0.46, -0.3, -0.6, -0.8, -0.07);
    body.quad_to(-0.86, 0.0, -0.8, 0.07);
    body.cubic_to(-0.3, 0.58, 0.85, 0.5, 1.0, 0.04);
    body.close();

    let mut tail = PathBuilder::new();
    tail.move_to(-0.68, 0.0);
    tail.line_to(-1.45, -0.52);
    tail.quad_to(-1.22, 0.0, -1.45, 0.52);
    tail.close();

    let mut dorsal = PathBuilder::new();
    dorsal.move_to(-0.4, -0.3);
    dorsal.quad_to(-0.1, -0.86, 0.38, -0.38);
    dorsal.close();

    let mut pelvic = PathBuilder::new();
    pelvic.move_to(0.15, 0.3);
    pelvic.quad_to(-0.05, 0.72, -0.3, 0.62);
    pelvic.quad_to(-0.12, 0.45, -0.05, 0.3);
    pelvic.close();

    let body = body.finish()?;
    let mut stripes = PathBuilder::new();
    stripes.push_path(&oval(0.22, 0.0, 0.09, 0.42)?);
    stripes.push_path(&oval(-0.42, 0.0, 0.07, 0.3)?);

    Some(FishShapes {
        outline: body
            .clone()
            .transform(Transform::from_row(1.05, 0.0, 0.0, 1.12, 0.0, 0.0))?,
        body,
        tail: tail.finish()?,
        dorsal: dorsal.finish()?,
        pelvic: pelvic.finish()?,
        belly: oval(0.1, 0.2, 0.62, 0.16)?,
        stripes: stripes.finish()?,
        eye: oval(0.62, -0.1, 0.13, 0.13)?,
        pupil: oval(0.66, -0.1, 0.066, 0.066)?,
        glint: oval(0.64, -0.135, 0.026, 0.026)?,
    })
}

fn make_fish() -> Vec<Fish> {
    let r = |i: usize, k: u64| unit(SEED, (i as u64) << 8 | k);
    let mut fish: Vec<Fish> = (0..FISH)
        .map(|i| {
            let Livery { body, fin, stripes } = PALETTE[i % PALETTE.len()];
            Fish {
                size: 24.0 + 34.0 * r(i, 0),
                body: colour(body),
                fin: colour(fin),
                belly: lighten(body, 0.35),
                stripe: stripes.map(colour),
                x_rate: 0.16 + 0.2 * f64::from(r(i, 1)),
                x_phase: TAU * f64::from(r(i, 2)),
                y_base: 0.18 + 0.5 * (i as f32 + r(i, 3)) / FISH as f32,
                y_amp: 0.03 + 0.05 * r(i, 4),
                y_rate: 0.4 + 0.5 * f64::from(r(i, 5)),
                y_phase: TAU * f64::from(r(i, 6)),
                wag_rate: 7.0 + 5.0 * f64::from(r(i, 7)),
                wag_phase: TAU * f64::from(r(i, 8)),
            }
        })
        .collect();
    // Small fish first: they read as farther away.
    fish.sort_by(|a, b| a.size.total_cmp(&b.size));
    fish
}

fn player_fish() -> Fish {
    let Livery { body, fin, stripes } = PLAYER_LIVERY;
    Fish {
        size: PLAYER_SIZE,
        body: colour(body),
        fin: colour(fin),
        belly: lighten(body, 0.35),
        stripe: stripes.map(colour),
        // Its motion comes from the controls, not from these.
        x_rate: 0.0,
        x_phase: 0.0,
        y_base: 0.5,
        y_amp: 0.0,
        y_rate: 0.0,
        y_phase: 0.0,
        wag_rate: 0.0,
        wag_phase: 0.0,
    }
}

fn make_weeds() -> Vec<Weed> {
    let r = |i: usize, k: u64| unit(SEED ^ 0x3EED, (i as u64) << 8 | k);
    (0..WEEDS)
        .map(|i| {
            let g = r(i, 3);
            Weed {
                x: (i as f32 + 0.2 + 0.6 * r(i, 0)) / WEEDS as f32,
                height: 0.16 + 0.26 * r(i, 1),
                width: 12.0 + 10.0 * r(i, 2),
                colour: [
                    (20.0 + 40.0 * g) as u8,
                    (100.0 + 70.0 * g) as u8,
                    (45.0 + 40.0 * (1.0 - g)) as u8,
                ],
                sway_rate: 0.8 + 0.7 * f64::from(r(i, 4)),
                sway_phase: TAU * f64::from(r(i, 5)),
            }
        })
        .collect()
}

fn make_bubbles() -> Vec<Bubble> {
    let r = |i: usize, k: u64| unit(SEED ^ 0xB0BB, (i as u64) << 8 | k);
    (0..BUBBLES)
        .map(|i| Bubble {
            x: 0.03 + 0.94 * r(i, 0),
            radius: 3.0 + 6.0 * r(i, 1) * r(i, 1),
            speed: 0.08 + 0.12 * r(i, 2),
            offset: r(i, 3),
            wobble_phase: TAU * f64::from(r(i, 4)),
        })
        .collect()
}

/// Draws the static parts: water gradient, light shafts, distant rocks, sand, pebbles, rocks
/// and the aerator stone.
fn background(width: u32, height: u32, s: f32) -> Result<Pixmap, GameError> {
    let bad_size = GameError::InvalidSize { width, height };
    let mut pm = Pixmap::new(width, height).ok_or(bad_size)?;
    let (w, h) = (width as f32, height as f32);
    let id = Transform::identity();
    let full = Rect::from_xywh(0.0, 0.0, w, h).ok_or(GameError::Drawing("frame rectangle"))?;

    let water = LinearGradient::new(
        Point::from_xy(0.0, 0.0),
        Point::from_xy(0.0, h),
        vec![
            GradientStop::new(0.0, rgb(60, 170, 215)),
            GradientStop::new(0.45, rgb(18, 96, 150)),
            GradientStop::new(1.0, rgb(6, 34, 70)),
        ],
        SpreadMode::Pad,
        id,
    )
    .ok_or(GameError::Drawing("water gradient"))?;
    pm.fill_rect(
        full,
        &Paint {
            shader: water,
            ..Paint::default()
        },
        id,
        None,
    );

    // Light shafts fanning down from the surface, fading with depth.
    for i in 0..5 {
        let fi = i as f32;
        let top_x = w * (0.08 + 0.2 * fi);
        let top_w = w * 0.05;
        let skew = w * 0.12;
        let mut pb = PathBuilder::new();
        pb.move_to(top_x, 0.0);
        pb.line_to(top_x + top_w, 0.0);
        pb.line_to(top_x + top_w * 2.2 + skew, h * SAND_TOP);
        pb.line_to(top_x + skew, h * SAND_TOP);
        pb.close();
        let light = LinearGradient::new(
            Point::from_xy(0.0, 0.0),
            Point::from_xy(0.0, h * SAND_TOP),
            vec![
                GradientStop::new(0.0, Color::from_rgba8(255, 255, 230, 46)),
                GradientStop::new(1.0, Color::from_rgba8(255, 255, 230, 0)),
            ],
            SpreadMode::Pad,
            id,
        );
        if let (Some(path), Some(shader)) = (pb.finish(), light) {
            pm.fill_path(
                &path,
                &Paint {
                    shader,
                    ..Paint::default()
                },
                FillRule::Winding,
                id,
                None,
            );
        }
    }

    // Distant rock silhouettes.
    let mut pb = PathBuilder::new();
    pb.move_to(0.0, h);
    pb.line_to(0.0, h * 0.78);
    let hills = 7;
    for i in 0..hills {
        let x0 = w * i as f32 / hills as f32;
        let x1 = w * (i + 1) as f32 / hills as f32;
        let peak = h * (0.66 + 0.1 * unit(SEED ^ 0x4111, i));
        pb.quad_to(
            0.5 * (x0 + x1),
            peak,
            x1,
            h * (0.76 + 0.04 * unit(SEED ^ 0x4112, i)),
        );
    }
    pb.line_to(w, h);
    pb.close();
    if let Some(path) = pb.finish() {
        pm.fill_path(
            &path,
            &solid(Color::from_rgba8(8, 40, 70, 150)),
            FillRule::Winding,
            id,
            None,
        );
    }

    // Sand with a wavy top.
    let sand_y = h * SAND_TOP;
    let mut pb = PathBuilder::new();
    pb.move_to(0.0, h);
    pb.line_to(0.0, sand_y);
    let waves = 6;
    for i in 0..waves {
        let x0 = w * i as f32 / waves as f32;
        let x1 = w * (i + 1) as f32 / waves as f32;
        let dy = if i % 2 == 0 { -12.0 } else { 10.0 } * s;
        pb.quad_to(0.5 * (x0 + x1), sand_y + dy, x1, sand_y);
    }
    pb.line_to(w, h);
    pb.close();
    let sand = LinearGradient::new(
        Point::from_xy(0.0, sand_y - 12.0 * s),
        Point::from_xy(0.0, h),
        vec![
            GradientStop::new(0.0, rgb(214, 194, 140)),
            GradientStop::new(1.0, rgb(150, 125, 80)),
        ],
        SpreadMode::Pad,
        id,
    )
    .ok_or(GameError::Drawing("sand gradient"))?;
    if let Some(path) = pb.finish() {
        pm.fill_path(
            &path,
            &Paint {
                shader: sand,
                ..Paint::default()
            },
            FillRule::Winding,
            id,
            None,
        );
    }

    // Pebbles.
    for i in 0..60u64 {
        let x = w * unit(SEED ^ 0x9EB, i);
        let y = sand_y + (h - sand_y) * (0.15 + 0.8 * unit(SEED ^ 0x9EC, i));
        let r = s * (2.0 + 4.0 * unit(SEED ^ 0x9ED, i));
        let tone = (90.0 + 90.0 * unit(SEED ^ 0x9EE, i)) as u8;
        if let Some(p) = oval(x, y, r * 1.4, r) {
            pm.fill_path(
                &p,
                &solid(rgb(tone, tone - 10, tone - 30)),
                FillRule::Winding,
                id,
                None,
            );
        }
    }

    // Two big rocks and the aerator stone.
    for (cx, rx, ry, c) in [
        (0.2, 90.0, 48.0, rgb(95, 100, 110)),
        (0.58, 60.0, 34.0, rgb(110, 105, 100)),
        (AERATOR_X, 22.0, 12.0, rgb(70, 75, 90)),
    ] {
        if let Some(p) = oval(w * cx, sand_y + 0.5 * ry * s, rx * s, ry * s) {
            pm.fill_path(&p, &solid(c), FillRule::Winding, id, None);
        }
    }
    Ok(pm)
}
