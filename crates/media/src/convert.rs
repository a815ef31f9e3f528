//! RGBA/BGRA → I420 colour conversion (BT.709, limited range), SIMD through the `yuv` crate.
//!
//! ```
//! use crosscast_media::{rgba_to_i420, I420Image};
//! let rgba = vec![255u8; 64 * 32 * 4];
//! let mut img = I420Image::new(64, 32).unwrap();
//! rgba_to_i420(&rgba, 64 * 4, 64, 32, &mut img).unwrap();
//! assert!(img.y().iter().all(|&y| y == 235)); // white is 235 in limited range
//! ```

use crate::MediaError;
use crosscast_wire::PixelOrder;
use yuv::{BufferStoreMut, YuvConversionMode, YuvPlanarImageMut, YuvRange, YuvStandardMatrix};

/// A tightly packed I420 (YUV 4:2:0 planar) image: Y stride = width, U/V stride = width / 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct I420Image {
    width: u32,
    height: u32,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
}

impl I420Image {
    /// Allocates a black-initialised image; width and height must be even and non-zero.
    pub fn new(width: u32, height: u32) -> Result<Self, MediaError> {
        check_size(width, height)?;
        let (w, h) = (width as usize, height as usize);
        Ok(Self {
            width,
            height,
            y: vec![16; w * h],
            u: vec![128; w * h / 4],
            v: vec![128; w * h / 4],
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The luma plane, `width` bytes per row.
    pub fn y(&self) -> &[u8] {
        &self.y
    }

    /// The Cb plane, `width / 2` bytes per row.
    pub fn u(&self) -> &[u8] {
        &self.u
    }

    /// The Cr plane, `width / 2` bytes per row.
    pub fn v(&self) -> &[u8] {
        &self.v
    }
}

/// Mutable destination planes with their strides (an `I420Image` or an FFmpeg frame).
pub(crate) struct PlanesMut<'a> {
    pub(crate) y: &'a mut [u8],
    pub(crate) y_stride: usize,
    pub(crate) u: &'a mut [u8],
    pub(crate) u_stride: usize,
    pub(crate) v: &'a mut [u8],
    pub(crate) v_stride: usize,
}

/// H.264 4:2:0 needs whole chroma samples, so odd sizes are rejected rather than guessed at.
fn check_size(width: u32, height: u32) -> Result<(), MediaError> {
    if width == 0 || height == 0 || width % 2 != 0 || height % 2 != 0 {
        return Err(MediaError::InvalidFrame(format!(
            "size {width}x{height} must be even and non-zero for I420"
        )));
    }
    if width > 16384 || height > 16384 {
        return Err(MediaError::InvalidFrame(format!(
            "size {width}x{height} is larger than 16384x16384"
        )));
    }
    Ok(())
}

/// [`check_source`] for a frame that will be scaled: odd sizes are fine, the output is even.
pub(crate) fn check_scalable_source(
    src: &[u8],
    stride: usize,
    width: u32,
    height: u32,
) -> Result<(), MediaError> {
    if width == 0 || height == 0 {
        return Err(MediaError::InvalidFrame(format!(
            "size {width}x{height} must be non-zero"
        )));
    }
    // The even-size rule is the only difference: check the size rounded up to even.
    check_size(width.next_multiple_of(2), height.next_multiple_of(2))?;
    check_rows(src, stride, width, height)
}

pub(crate) fn check_source(
    src: &[u8],
    stride: usize,
    width: u32,
    height: u32,
) -> Result<(), MediaError> {
    check_size(width, height)?;
    check_rows(src, stride, width, height)
}

/// The stride covers a row and the buffer covers every row.
fn check_rows(src: &[u8], stride: usize, width: u32, height: u32) -> Result<(), MediaError> {
    let row = width as usize * 4;
    if stride < row {
        return Err(MediaError::InvalidFrame(format!(
            "stride {stride} is smaller than width*4 = {row}"
        )));
    }
    let need = stride
        .checked_mul(height as usize)
        .ok_or_else(|| MediaError::InvalidFrame("stride * height overflows".into()))?;
    if src.len() < need {
        return Err(MediaError::InvalidFrame(format!(
            "RGBA buffer holds {} bytes, {width}x{height} with stride {stride} needs {need}",
            src.len()
        )));
    }
    Ok(())
}

/// Converts an RGBA image (`stride` bytes per row) to I420 BT.709 limited range, SIMD-accelerated.
pub fn rgba_to_i420(
    src: &[u8],
    stride: usize,
    width: u32,
    height: u32,
    dst: &mut I420Image,
) -> Result<(), MediaError> {
    to_i420(src, PixelOrder::Rgba, stride, width, height, dst)
}

/// Converts a 4-byte-per-pixel image in either byte order (`stride` bytes per row) to I420
/// BT.709 limited range, SIMD-accelerated: RGBA from crosscast's slots, BGRA from `wl_shm`.
pub fn to_i420(
    src: &[u8],
    order: PixelOrder,
    stride: usize,
    width: u32,
    height: u32,
    dst: &mut I420Image,
) -> Result<(), MediaError> {
    if dst.width != width || dst.height != height {
        return Err(MediaError::InvalidFrame(format!(
            "destination is {}x{}, source is {width}x{height}",
            dst.width, dst.height
        )));
    }
    let w = width as usize;
    convert_into(
        src,
        order,
        stride,
        width,
        height,
        PlanesMut {
            y: &mut dst.y,
            y_stride: w,
            u: &mut dst.u,
            u_stride: w / 2,
            v: &mut dst.v,
            v_stride: w / 2,
        },
    )
}

pub(crate) fn convert_into(
    src: &[u8],
    order: PixelOrder,
    stride: usize,
    width: u32,
    height: u32,
    planes: PlanesMut<'_>,
) -> Result<(), MediaError> {
    check_source(src, stride, width, height)?;
    let to_u32 = |s: usize| {
        u32::try_from(s).map_err(|_| MediaError::InvalidFrame(format!("stride {s} too large")))
    };
    let mut image = YuvPlanarImageMut {
        y_plane: BufferStoreMut::Borrowed(planes.y),
        y_stride: to_u32(planes.y_stride)?,
        u_plane: BufferStoreMut::Borrowed(planes.u),
        u_stride: to_u32(planes.u_stride)?,
        v_plane: BufferStoreMut::Borrowed(planes.v),
        v_stride: to_u32(planes.v_stride)?,
        width,
        height,
    };
    let convert = match order {
        PixelOrder::Rgba => yuv::rgba_to_yuv420,
        PixelOrder::Bgra => yuv::bgra_to_yuv420,
    };
    convert(
        &mut image,
        &src[..stride * height as usize],
        to_u32(stride)?,
        YuvRange::Limited,
        YuvStandardMatrix::Bt709,
        YuvConversionMode::Balanced,
    )
    .map_err(|e| MediaError::InvalidFrame(format!("conversion rejected the image: {e}")))
}

/// Plain scalar BT.709 limited-range conversion (chroma from the 2x2 RGB average), the test oracle.
pub fn rgba_to_i420_reference(
    src: &[u8],
    stride: usize,
    width: u32,
    height: u32,
    dst: &mut I420Image,
) -> Result<(), MediaError> {
    check_source(src, stride, width, height)?;
    if dst.width != width || dst.height != height {
        return Err(MediaError::InvalidFrame(format!(
            "destination is {}x{}, source is {width}x{height}",
            dst.width, dst.height
        )));
    }
    const KR: f64 = 0.2126;
    const KB: f64 = 0.0722;
    const KG: f64 = 1.0 - KR - KB;
    let (w, h) = (width as usize, height as usize);
    let px = |x: usize, y: usize| {
        let o = y * stride + x * 4;
        (
            f64::from(src[o]),
            f64::from(src[o + 1]),
            f64::from(src[o + 2]),
        )
    };
    let luma = |r: f64, g: f64, b: f64| KR * r + KG * g + KB * b;
    let to_u8 = |v: f64| v.round().clamp(0.0, 255.0) as u8;
    for y in 0..h {
        for x in 0..w {
            let (r, g, b) = px(x, y);
            dst.y[y * w + x] = to_u8(16.0 + 219.0 / 255.0 * luma(r, g, b));
        }
    }
    for cy in 0..h / 2 {
        for cx in 0..w / 2 {
            let (mut r, mut g, mut b) = (0.0, 0.0, 0.0);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let (pr, pg, pb) = px(cx * 2 + dx, cy * 2 + dy);
                r += pr / 4.0;
                g += pg / 4.0;
                b += pb / 4.0;
            }
            let l = luma(r, g, b);
            let i = cy * (w / 2) + cx;
            dst.u[i] = to_u8(128.0 + 224.0 / 255.0 * (b - l) / (2.0 * (1.0 - KB)));
            dst.v[i] = to_u8(128.0 + 224.0 / 255.0 * (r - l) / (2.0 * (1.0 - KR)));
        }
    }
    Ok(())
}
