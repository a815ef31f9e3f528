//! SMPTE-like colour bars (after SMPTE EG 1): seven 75% bars, a strip of reversed blue bars,
//! and a bottom row with -I, 100% white, +Q, black and a PLUGE. The frame never changes, so it
//! is built once per size as three distinct rows and copied.

/// Top band: 75% grey, yellow, cyan, green, magenta, red, blue.
const TOP: [[u8; 3]; 7] = [
    [191, 191, 191],
    [191, 191, 0],
    [0, 191, 191],
    [0, 191, 0],
    [191, 0, 191],
    [191, 0, 0],
    [0, 0, 191],
];
/// Middle strip: blue, black, magenta, black, cyan, black, grey.
const MIDDLE: [[u8; 3]; 7] = [
    [0, 0, 191],
    [19, 19, 19],
    [191, 0, 191],
    [19, 19, 19],
    [0, 191, 191],
    [19, 19, 19],
    [191, 191, 191],
];
/// Bottom row as (end in 84ths of the width, colour): -I, 100% white, +Q and black, each 5/4
/// of a bar (15/84), then the PLUGE (below black, black, above black; a third of a bar each)
/// and black to the edge.
const BOTTOM: [(u64, [u8; 3]); 8] = [
    (15, [0, 33, 76]),
    (30, [255, 255, 255]),
    (45, [50, 0, 106]),
    (60, [19, 19, 19]),
    (64, [9, 9, 9]),
    (68, [19, 19, 19]),
    (72, [29, 29, 29]),
    (84, [19, 19, 19]),
];

/// The bars at one size: each band as one pre-built row and the first row after it.
pub(crate) struct Bars {
    bands: [(usize, Vec<u8>); 3],
}

impl Bars {
    pub(crate) fn new(width: u32, height: u32) -> Bars {
        let h = height as usize;
        let top = row(width, |x| TOP[bar(x, width)]);
        let middle = row(width, |x| MIDDLE[bar(x, width)]);
        let bottom = row(width, |x| {
            let u = x as u64 * 84 / width as u64;
            BOTTOM
                .iter()
                .find(|(end, _)| u < *end)
                .map_or([19, 19, 19], |(_, c)| *c)
        });
        let top_end = h * 2 / 3;
        let middle_end = (h * 3 / 4).max(top_end);
        Bars {
            bands: [(top_end, top), (middle_end, middle), (h, bottom)],
        }
    }

    /// Copies the bars into `dst`; the caller has checked the stride and length.
    pub(crate) fn render(&self, dst: &mut [u8], stride: usize) {
        let mut y = 0;
        for (end, pixels) in &self.bands {
            while y < *end {
                let start = y * stride;
                dst[start..start + pixels.len()].copy_from_slice(pixels);
                y += 1;
            }
        }
    }
}

/// Which of seven equal bars column `x` is in.
fn bar(x: u32, width: u32) -> usize {
    ((x as u64 * 7 / width as u64) as usize).min(6)
}

/// One RGBA row of `width` pixels coloured by `colour(x)`.
fn row(width: u32, colour: impl Fn(u32) -> [u8; 3]) -> Vec<u8> {
    (0..width)
        .flat_map(|x| {
            let [r, g, b] = colour(x);
            [r, g, b, 255]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_at_1280x720() {
        let bars = Bars::new(1280, 720);
        assert_eq!(bars.bands[0].0, 480);
        assert_eq!(bars.bands[1].0, 540);
        assert_eq!(bars.bands[2].0, 720);
        let px = |band: usize, x: usize| -> [u8; 3] {
            let r = &bars.bands[band].1;
            [r[x * 4], r[x * 4 + 1], r[x * 4 + 2]]
        };
        assert_eq!(px(0, 0), TOP[0]);
        assert_eq!(px(0, 1279), TOP[6]);
        assert_eq!(px(1, 0), MIDDLE[0]);
        assert_eq!(px(2, 0), [0, 33, 76]);
        assert_eq!(px(2, 300), [255, 255, 255]);
        // The PLUGE: 9, 19, 29 side by side under the red bar.
        assert_eq!(px(2, 930), [9, 9, 9]);
        assert_eq!(px(2, 990), [19, 19, 19]);
        assert_eq!(px(2, 1050), [29, 29, 29]);
        assert_eq!(px(2, 1279), [19, 19, 19]);
    }
}
