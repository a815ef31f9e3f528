//! Where the game's image sits in the preview window, and the way back from a window pixel to
//! a game pixel. The preview draws with [`Letterbox::fit`] and input maps with the same
//! rectangle, so a click lands on the game pixel shown under the cursor.

/// The game image's rectangle inside a window: scaled to fit with its aspect ratio kept,
/// centred, black bars around.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Letterbox {
    /// Left edge in window pixels.
    pub x: u32,
    /// Top edge in window pixels.
    pub y: u32,
    /// Width in window pixels (at least 1).
    pub w: u32,
    /// Height in window pixels (at least 1).
    pub h: u32,
    /// The game surface's width in its own pixels.
    pub src_w: u32,
    /// The game surface's height in its own pixels.
    pub src_h: u32,
}

impl Letterbox {
    /// The rectangle a `src_w` x `src_h` image takes in a `win_w` x `win_h` window; `None`
    /// when either is empty.
    pub fn fit(src_w: u32, src_h: u32, win_w: u32, win_h: u32) -> Option<Letterbox> {
        if src_w == 0 || src_h == 0 || win_w == 0 || win_h == 0 {
            return None;
        }
        let (sw, sh, dw, dh) = (
            u64::from(src_w),
            u64::from(src_h),
            u64::from(win_w),
            u64::from(win_h),
        );
        // Fit by the tighter dimension, in integers: w/h == sw/sh up to rounding.
        let (w, h) = if dw * sh <= dh * sw {
            (dw, (dw * sh / sw).max(1))
        } else {
            ((dh * sw / sh).max(1), dh)
        };
        Some(Letterbox {
            x: ((dw - w) / 2) as u32,
            y: ((dh - h) / 2) as u32,
            w: w as u32,
            h: h as u32,
            src_w,
            src_h,
        })
    }

    /// The game pixel under window point (`wx`, `wy`), or `None` outside the image. The
    /// result is in `[0, src_w) x [0, src_h)`.
    pub fn to_game(&self, wx: f64, wy: f64) -> Option<(f64, f64)> {
        let (lx, ly) = (wx - f64::from(self.x), wy - f64::from(self.y));
        if !(lx >= 0.0 && ly >= 0.0 && lx < f64::from(self.w) && ly < f64::from(self.h)) {
            return None;
        }
        let gx = lx * f64::from(self.src_w) / f64::from(self.w);
        let gy = ly * f64::from(self.src_h) / f64::from(self.h);
        // Rounding at the far edge must not step outside the surface.
        Some((
            gx.min(f64::from(self.src_w) - 1.0 / 256.0),
            gy.min(f64::from(self.src_h) - 1.0 / 256.0),
        ))
    }

    /// Window distance (`dx`, `dy`) in game pixels: how far relative motion moves the game.
    pub fn scale_delta(&self, dx: f64, dy: f64) -> (f64, f64) {
        (
            dx * f64::from(self.src_w) / f64::from(self.w),
            dy * f64::from(self.src_h) / f64::from(self.h),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_wide_and_tall_windows() {
        let l = Letterbox::fit(160, 90, 400, 90).unwrap();
        assert_eq!((l.x, l.y, l.w, l.h), (120, 0, 160, 90));
        let l = Letterbox::fit(160, 90, 160, 300).unwrap();
        assert_eq!((l.x, l.y, l.w, l.h), (0, 105, 160, 90));
        let l = Letterbox::fit(160, 90, 320, 180).unwrap();
        assert_eq!((l.x, l.y, l.w, l.h), (0, 0, 320, 180));
        assert!(Letterbox::fit(0, 90, 320, 180).is_none());
    }

    #[test]
    fn maps_window_points_to_game_pixels() {
        // 1280x720 game in a 640x640 window: image 640x360 at y 140.
        let l = Letterbox::fit(1280, 720, 640, 640).unwrap();
        assert_eq!((l.x, l.y, l.w, l.h), (0, 140, 640, 360));
        assert_eq!(l.to_game(0.0, 140.0), Some((0.0, 0.0)));
        assert_eq!(l.to_game(320.0, 320.0), Some((640.0, 360.0)));
        assert_eq!(l.to_game(100.0, 139.9), None);
        assert_eq!(l.to_game(100.0, 500.0), None);
        let (x, y) = l.to_game(639.99, 499.99).unwrap();
        assert!(x < 1280.0 && y < 720.0);
        assert_eq!(l.scale_delta(1.0, -2.0), (2.0, -4.0));
    }
}
