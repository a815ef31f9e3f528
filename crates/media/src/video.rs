//! The H.264 encoder of any backend: x264 (software), VAAPI (hwcontext upload), NVENC and QSV
//! (system-memory frames). `VideoEncoder::open` picks one as `EncoderConfig::encoder` says;
//! `auto` tries VAAPI, NVENC and QSV in that order, each opened for real at the stream's size,
//! and falls back to x264 with a line saying why each one could not be used.
//!
//! GPU paths are exercised only where a GPU exists; on a machine without one the tests cover
//! the probe, the fallback and the errors of an explicit choice.

use crate::config::EncoderConfig;
use crate::convert::I420Image;
use crate::ffi_io;
use crate::load::AUTO_LADDER;
use crate::MediaError;
use ffmpeg_next as ff;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// x264 parameters that shape the stream's SPS/PPS, set on every rung of `--preset auto`'s
/// ladder so all rungs write identical extradata and a switch mid-stream stays decodable
/// (ultrafast alone would drop CABAC, the 8x8 transform and weighted prediction).
pub(crate) const AUTO_PINNED: &str = "ref=1:cabac=1:8x8dct=1:weightp=1";

/// Which H.264 encoder a stream uses (`--encoder`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VideoBackend {
    /// The first of VAAPI, NVENC, QSV that opens, else x264.
    #[default]
    Auto,
    /// libx264 on the CPU.
    X264,
    /// `h264_vaapi` on a DRM render node (Intel, AMD).
    Vaapi,
    /// `h264_nvenc` (NVIDIA).
    Nvenc,
    /// `h264_qsv` (Intel Quick Sync).
    Qsv,
}

impl VideoBackend {
    /// Every value, in the order `auto` tries the hardware ones (x264 last).
    pub const ALL: [Self; 5] = [Self::Auto, Self::Vaapi, Self::Nvenc, Self::Qsv, Self::X264];

    /// The CLI name (`auto`, `x264`, `vaapi`, `nvenc`, `qsv`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::X264 => "x264",
            Self::Vaapi => "vaapi",
            Self::Nvenc => "nvenc",
            Self::Qsv => "qsv",
        }
    }

    /// FFmpeg's encoder name, none for `Auto`.
    pub fn codec_name(self) -> Option<&'static str> {
        match self {
            Self::Auto => None,
            Self::X264 => Some("libx264"),
            Self::Vaapi => Some("h264_vaapi"),
            Self::Nvenc => Some("h264_nvenc"),
            Self::Qsv => Some("h264_qsv"),
        }
    }
}

impl fmt::Display for VideoBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for VideoBackend {
    type Err = MediaError;
    fn from_str(s: &str) -> Result<Self, MediaError> {
        Self::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| {
                MediaError::InvalidConfig(format!(
                    "encoder {s:?} is not one of auto, x264, vaapi, nvenc, qsv"
                ))
            })
    }
}

/// An open H.264 encoder of one backend, with the frame it fills for each picture.
pub struct VideoEncoder {
    backend: VideoBackend,
    enc: ff::encoder::Video,
    /// The system-memory picture: YUV420P for x264 and NVENC, NV12 for VAAPI and QSV.
    frame: ff::frame::Video,
    /// VAAPI's surface pool (frames are uploaded into it); the encoder holds its own reference.
    hw_frames: Option<ffi_io::BufferRef>,
    /// x264's preset, `None` for the hardware encoders.
    preset: Option<String>,
    /// Whether the x264 parameters are `AUTO_PINNED` (the `--preset auto` ladder).
    pinned: bool,
    bitrate_kbps: u32,
    selection: String,
}

/// What is known at open time for the context: its size, rate and rate control.
fn base_context(
    codec: ff::Codec,
    cfg: &EncoderConfig,
    format: ff::format::Pixel,
    kbps: u32,
) -> Result<ff::encoder::video::Video, ff::Error> {
    let mut enc = ff::codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()?;
    let (num, den) = (
        i32::try_from(cfg.fps.num()).unwrap_or(60),
        i32::try_from(cfg.fps.den()).unwrap_or(1),
    );
    enc.set_width(cfg.width);
    enc.set_height(cfg.height);
    enc.set_format(format);
    // One tick per frame: frame_index is the pts.
    enc.set_time_base(ff::Rational::new(den, num));
    enc.set_frame_rate(Some(ff::Rational::new(num, den)));
    enc.set_gop(cfg.keyint_frames);
    enc.set_max_b_frames(0);
    set_rate(&mut enc, kbps);
    enc.set_colorspace(ff::color::Space::BT709);
    enc.set_color_range(ff::color::Range::MPEG);
    enc.set_color_primaries(ff::color::Primaries::BT709);
    enc.set_color_transfer_characteristic(ff::color::TransferCharacteristic::BT709);
    // FLV and MP4 carry SPS/PPS in the header (avcC), and RTMP re-sends it on every reconnect.
    enc.set_flags(ff::codec::Flags::GLOBAL_HEADER);
    Ok(enc)
}

/// Target, VBV max rate and a one-second VBV buffer, all from the context's fields: the shape
/// ingests expect, and the three fields libx264 (and NVENC) compare before every frame to
/// reconfigure a running encoder. x264's VBV must not come from `x264-params` too: the wrapper
/// would reset it from these fields on the first frame.
fn set_rate(e: &mut ff::encoder::Encoder, kbps: u32) {
    let bps = kbps as usize * 1000;
    e.set_bit_rate(bps);
    e.set_max_bit_rate(bps);
    ffi_io::set_rc_buffer_size(e, i32::try_from(bps).unwrap_or(i32::MAX));
}

/// The first DRM render node, where VAAPI and QSV open their device.
fn render_node() -> Option<String> {
    let mut nodes: Vec<String> = std::fs::read_dir("/dev/dri")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("renderD"))
        .collect();
    nodes.sort();
    nodes.first().map(|n| format!("/dev/dri/{n}"))
}

fn find(codec: &str) -> Result<ff::Codec, String> {
    ff::encoder::find_by_name(codec).ok_or_else(|| format!("FFmpeg built without {codec}"))
}

fn sized(cfg: &EncoderConfig, codec: &str, e: ff::Error) -> String {
    format!("{codec} cannot encode {}x{}: {e}", cfg.width, cfg.height)
}

fn copy_plane(dst: &mut [u8], dst_stride: usize, src: &[u8], width: usize, rows: usize) {
    for (d, s) in dst
        .chunks_mut(dst_stride)
        .zip(src.chunks_exact(width))
        .take(rows)
    {
        d[..width].copy_from_slice(s);
    }
}

/// I420's two chroma planes interleaved into NV12's one (what VAAPI surfaces and QSV take).
fn interleave_uv(dst: &mut [u8], dst_stride: usize, u: &[u8], v: &[u8], cw: usize, rows: usize) {
    for ((d, u), v) in dst
        .chunks_mut(dst_stride)
        .zip(u.chunks_exact(cw))
        .zip(v.chunks_exact(cw))
        .take(rows)
    {
        for ((pair, &u), &v) in d[..cw * 2].chunks_exact_mut(2).zip(u).zip(v) {
            pair[0] = u;
            pair[1] = v;
        }
    }
}

fn picture(format: ff::format::Pixel, cfg: &EncoderConfig) -> ff::frame::Video {
    let mut f = ff::frame::Video::new(format, cfg.width, cfg.height);
    f.set_color_range(ff::color::Range::MPEG);
    f.set_color_space(ff::color::Space::BT709);
    f
}

impl VideoEncoder {
    /// Opens the encoder `cfg.encoder` names at the stream's size; `auto` tries VAAPI, NVENC
    /// and QSV and falls back to x264. [`Self::selection`] says which and why.
    pub fn open(cfg: &EncoderConfig) -> Result<Self, MediaError> {
        crate::encoder::init_ffmpeg()?;
        let explicit = |backend: VideoBackend, r: Result<Self, String>| {
            r.map_err(|reason| MediaError::EncoderOpen {
                codec: backend.codec_name().unwrap_or("?").into(),
                reason: format!("{reason} (--encoder auto falls back to x264)"),
            })
        };
        let mut enc = match cfg.encoder {
            VideoBackend::X264 => Self::open_x264(cfg, None, cfg.video_bitrate_kbps)?,
            VideoBackend::Vaapi => explicit(VideoBackend::Vaapi, Self::open_vaapi(cfg))?,
            VideoBackend::Nvenc => explicit(VideoBackend::Nvenc, Self::open_nvenc(cfg))?,
            VideoBackend::Qsv => explicit(VideoBackend::Qsv, Self::open_qsv(cfg))?,
            VideoBackend::Auto => {
                let mut why = Vec::new();
                let mut found = None;
                for (b, open) in [
                    (
                        VideoBackend::Vaapi,
                        Self::open_vaapi as fn(&EncoderConfig) -> _,
                    ),
                    (VideoBackend::Nvenc, Self::open_nvenc),
                    (VideoBackend::Qsv, Self::open_qsv),
                ] {
                    match open(cfg) {
                        Ok(e) => {
                            found = Some(e);
                            break;
                        }
                        Err(reason) => why.push(format!("{b}: {reason}")),
                    }
                }
                let mut e = match found {
                    Some(e) => e,
                    None => Self::open_x264(cfg, None, cfg.video_bitrate_kbps)?,
                };
                if !why.is_empty() {
                    e.selection = format!("{} ({})", e.selection, why.join("; "));
                }
                e
            }
        };
        enc.selection = format!("encoder: {}", enc.selection);
        Ok(enc)
    }

    /// Opens `cfg`'s encoder and closes it again: `Err` says why it cannot be used, before a
    /// run starts anything else; `Ok` is [`Self::selection`].
    pub fn probe(cfg: &EncoderConfig) -> Result<String, MediaError> {
        cfg.validate()?;
        Self::open(cfg).map(|e| e.selection)
    }

    /// x264 at `preset` (`None`: the configured one, `auto` starting at the ladder's top).
    fn open_x264(cfg: &EncoderConfig, preset: Option<&str>, kbps: u32) -> Result<Self, MediaError> {
        let auto = cfg.preset == "auto";
        let preset = preset.map(str::to_owned).unwrap_or_else(|| match auto {
            true => AUTO_LADDER[AUTO_LADDER.len() - 1].to_owned(),
            false => cfg.preset.clone(),
        });
        let err = |e: ff::Error| MediaError::EncoderOpen {
            codec: "libx264".into(),
            reason: e.to_string(),
        };
        let codec = find("libx264").map_err(|reason| MediaError::EncoderOpen {
            codec: "libx264".into(),
            reason,
        })?;
        let mut enc = base_context(codec, cfg, ff::format::Pixel::YUV420P, kbps).map_err(err)?;
        // Slice threads, x264 picking the count: what `tune zerolatency` asks for, which FFmpeg's
        // wrapper overrides with frame threads unless told (frame threads hold `threads` frames,
        // 37 ms at 720p60 on 2 cores, measured with --frame-times). The pipeline bench's ffmpeg
        // baseline gets `-thread_type slice` to match.
        enc.set_threading(ff::threading::Config {
            kind: ff::threading::Type::Slice,
            count: 0,
            ..Default::default()
        });
        let mut opts = ff::Dictionary::new();
        opts.set("preset", &preset);
        opts.set("tune", "zerolatency");
        let k = cfg.keyint_frames;
        // Fixed GOP (no scene-cut keyframes); the VBV comes from the context (`set_rate`).
        let mut params = format!("keyint={k}:min-keyint={k}:scenecut=0");
        if auto {
            params.push(':');
            params.push_str(AUTO_PINNED);
        }
        opts.set("x264-params", &params);
        let enc = enc.open_as_with(codec, opts).map_err(err)?;
        Ok(Self {
            backend: VideoBackend::X264,
            enc,
            frame: picture(ff::format::Pixel::YUV420P, cfg),
            hw_frames: None,
            selection: match auto {
                true => format!("x264, preset auto (starting at {preset})"),
                false => format!("x264, preset {preset}"),
            },
            preset: Some(preset),
            pinned: auto,
            bitrate_kbps: kbps,
        })
    }

    fn open_vaapi(cfg: &EncoderConfig) -> Result<Self, String> {
        let node = render_node().ok_or("no render node in /dev/dri")?;
        let codec = find("h264_vaapi")?;
        let device = ffi_io::vaapi_device(&node).map_err(|e| format!("cannot open {node}: {e}"))?;
        let mut enc = base_context(codec, cfg, ff::format::Pixel::VAAPI, cfg.video_bitrate_kbps)
            .map_err(|e| sized(cfg, "h264_vaapi", e))?;
        let frames = ffi_io::attach_hw_frames(
            enc.as_mut(),
            &device,
            (cfg.width, cfg.height),
            ff::format::Pixel::NV12,
        )
        .map_err(|e| format!("no NV12 surfaces on {node}: {e}"))?;
        let mut opts = ff::Dictionary::new();
        // Constant bitrate, one frame in flight: low latency.
        opts.set("rc_mode", "CBR");
        opts.set("async_depth", "1");
        let enc = enc
            .open_as_with(codec, opts)
            .map_err(|e| sized(cfg, "h264_vaapi", e))?;
        Ok(Self {
            backend: VideoBackend::Vaapi,
            enc,
            frame: picture(ff::format::Pixel::NV12, cfg),
            hw_frames: Some(frames),
            preset: None,
            pinned: false,
            bitrate_kbps: cfg.video_bitrate_kbps,
            selection: format!("vaapi on {node}"),
        })
    }

    fn open_nvenc(cfg: &EncoderConfig) -> Result<Self, String> {
        let codec = find("h264_nvenc")?;
        if !Path::new("/dev/nvidiactl").exists() {
            return Err("no NVIDIA driver (/dev/nvidiactl missing)".into());
        }
        let enc = base_context(
            codec,
            cfg,
            ff::format::Pixel::YUV420P,
            cfg.video_bitrate_kbps,
        )
        .map_err(|e| sized(cfg, "h264_nvenc", e))?;
        let mut opts = ff::Dictionary::new();
        opts.set("preset", "p4");
        opts.set("tune", "ll");
        opts.set("rc", "cbr");
        opts.set("zerolatency", "1");
        opts.set("delay", "0");
        let enc = enc
            .open_as_with(codec, opts)
            .map_err(|e| sized(cfg, "h264_nvenc", e))?;
        Ok(Self {
            backend: VideoBackend::Nvenc,
            enc,
            frame: picture(ff::format::Pixel::YUV420P, cfg),
            hw_frames: None,
            preset: None,
            pinned: false,
            bitrate_kbps: cfg.video_bitrate_kbps,
            selection: "nvenc".into(),
        })
    }

    fn open_qsv(cfg: &EncoderConfig) -> Result<Self, String> {
        let codec = find("h264_qsv")?;
        let node = render_node().ok_or("no render node in /dev/dri")?;
        let enc = base_context(codec, cfg, ff::format::Pixel::NV12, cfg.video_bitrate_kbps)
            .map_err(|e| sized(cfg, "h264_qsv", e))?;
        let mut opts = ff::Dictionary::new();
        opts.set("preset", "veryfast");
        opts.set("look_ahead", "0");
        opts.set("async_depth", "1");
        let enc = enc
            .open_as_with(codec, opts)
            .map_err(|e| sized(cfg, "h264_qsv", e))?;
        Ok(Self {
            backend: VideoBackend::Qsv,
            enc,
            frame: picture(ff::format::Pixel::NV12, cfg),
            hw_frames: None,
            preset: None,
            pinned: false,
            bitrate_kbps: cfg.video_bitrate_kbps,
            selection: format!("qsv on {node}"),
        })
    }

    /// A new x264 encoder like this one (same settings and current bitrate) at another preset
    /// of the auto ladder; its first frame will be an IDR.
    pub(crate) fn with_preset(
        &self,
        cfg: &EncoderConfig,
        preset: &str,
    ) -> Result<Self, MediaError> {
        if self.backend != VideoBackend::X264 {
            return Err(MediaError::InvalidConfig(format!(
                "{} has no x264 presets",
                self.backend
            )));
        }
        let mut e = Self::open_x264(cfg, Some(preset), self.bitrate_kbps)?;
        e.selection.clone_from(&self.selection);
        Ok(e)
    }

    /// A second x264 like this one (same settings and preset) at `kbps`: adaptive bitrate's
    /// live encode, whose first frame will be an IDR. x264 only (a hardware encoder would need
    /// a second session on the device, which some drivers refuse).
    pub(crate) fn sibling(&self, cfg: &EncoderConfig, kbps: u32) -> Result<Self, MediaError> {
        if self.backend != VideoBackend::X264 {
            return Err(MediaError::InvalidConfig(format!(
                "{} runs one encode",
                self.codec_name()
            )));
        }
        let mut e = Self::open_x264(cfg, self.preset.as_deref(), kbps)?;
        e.selection.clone_from(&self.selection);
        Ok(e)
    }

    /// Encodes `img` (the stream's size) as frame `pts`; packets come out of
    /// [`Self::receive_packet`].
    pub fn send_frame(&mut self, img: &I420Image, pts: i64) -> Result<(), MediaError> {
        let (w, h) = (img.width() as usize, img.height() as usize);
        if (img.width(), img.height()) != (self.frame.width(), self.frame.height()) {
            return Err(MediaError::InvalidFrame(format!(
                "{w}x{h} image for a {}x{} encoder",
                self.frame.width(),
                self.frame.height()
            )));
        }
        let f = &mut self.frame;
        let s0 = f.stride(0);
        copy_plane(f.data_mut(0), s0, img.y(), w, h);
        if f.format() == ff::format::Pixel::NV12 {
            let s1 = f.stride(1);
            interleave_uv(f.data_mut(1), s1, img.u(), img.v(), w / 2, h / 2);
        } else {
            let s1 = f.stride(1);
            copy_plane(f.data_mut(1), s1, img.u(), w / 2, h / 2);
            let s2 = f.stride(2);
            copy_plane(f.data_mut(2), s2, img.v(), w / 2, h / 2);
        }
        f.set_pts(Some(pts));
        let codec = self.codec_name();
        let fail = |e: ff::Error| MediaError::Encode(format!("H.264 encode ({codec}) failed: {e}"));
        match &self.hw_frames {
            Some(pool) => {
                let mut hw = ffi_io::upload(pool, &self.frame).map_err(fail)?;
                hw.set_pts(Some(pts));
                self.enc.send_frame(&hw).map_err(fail)
            }
            None => self.enc.send_frame(&self.frame).map_err(fail),
        }
    }

    /// Tells the encoder no more frames come; the rest of its packets follow.
    pub fn send_eof(&mut self) -> Result<(), MediaError> {
        self.enc
            .send_eof()
            .map_err(|e| MediaError::Encode(format!("H.264 flush failed: {e}")))
    }

    /// The next encoded packet into `pkt`: `Ok(false)` when there is none yet (or none left).
    pub fn receive_packet(&mut self, pkt: &mut ff::Packet) -> Result<bool, MediaError> {
        match self.enc.receive_packet(pkt) {
            Ok(()) => Ok(true),
            Err(ff::Error::Other { errno }) if errno == ff::error::EAGAIN => Ok(false),
            Err(ff::Error::Eof) => Ok(false),
            Err(e) => Err(MediaError::Encode(format!("encoder output failed: {e}"))),
        }
    }

    /// The stream's codec parameters (with SPS/PPS as extradata) for muxers.
    pub fn parameters(&self) -> ff::codec::Parameters {
        ff::codec::Parameters::from(&*self.enc)
    }

    /// SPS and PPS as the encoder wrote them at open.
    pub fn extradata(&self) -> Vec<u8> {
        ffi_io::extradata(&self.enc)
    }

    /// Changes the target bitrate (and the VBV max rate and one-second buffer with it) of the
    /// running encoder, from the next frame on. x264 and NVENC reconfigure in place; FFmpeg
    /// 5.1's VAAPI and QSV wrappers cannot, which is an error (the stream goes on unchanged).
    pub fn set_bitrate_kbps(&mut self, kbps: u32) -> Result<(), MediaError> {
        if !(100..=100_000).contains(&kbps) {
            return Err(MediaError::InvalidConfig(format!(
                "video bitrate {kbps} kb/s must be 100..=100000"
            )));
        }
        match self.backend {
            VideoBackend::X264 | VideoBackend::Nvenc => {
                set_rate(&mut self.enc, kbps);
                self.bitrate_kbps = kbps;
                Ok(())
            }
            b => Err(MediaError::InvalidConfig(format!(
                "{} cannot change its bitrate while running (FFmpeg 5.1)",
                b.codec_name().unwrap_or("?")
            ))),
        }
    }

    /// The target bitrate now, in kb/s.
    pub fn bitrate_kbps(&self) -> u32 {
        self.bitrate_kbps
    }

    /// The backend in use (never `Auto`).
    pub fn backend(&self) -> VideoBackend {
        self.backend
    }

    /// FFmpeg's name for the encoder in use (`libx264`, `h264_vaapi`, ...).
    pub fn codec_name(&self) -> &'static str {
        self.backend.codec_name().unwrap_or("?")
    }

    /// x264's current preset; `None` for hardware encoders.
    pub fn preset(&self) -> Option<&str> {
        self.preset.as_deref()
    }

    /// Whether this x264 runs `--preset auto`'s pinned parameters (it may switch presets).
    pub fn adaptive(&self) -> bool {
        self.pinned
    }

    /// The note saying which encoder runs and, for `auto`, why the others were not used:
    /// `encoder: x264, preset auto (starting at veryfast) (vaapi: no render node in /dev/dri; ...)`.
    pub fn selection(&self) -> &str {
        &self.selection
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(w: u32, h: u32) -> EncoderConfig {
        let mut c = EncoderConfig::new(w, h, 60);
        c.preset = "auto".into();
        c.encoder = VideoBackend::X264;
        c
    }

    #[test]
    fn every_auto_rung_writes_the_same_headers() {
        for (w, h) in [(1920, 1080), (1280, 720), (320, 180)] {
            let c = cfg(w, h);
            let base = VideoEncoder::open(&c).unwrap();
            let want = base.extradata();
            assert!(want.len() > 8, "{want:?}");
            for p in AUTO_LADDER {
                let e = base.with_preset(&c, p).unwrap();
                assert_eq!(e.extradata(), want, "{p} at {w}x{h}");
            }
        }
        // Without the pins they differ (the reason for them): ultrafast has no CABAC.
        let mut c = cfg(1280, 720);
        c.preset = "veryfast".into();
        let v = VideoEncoder::open(&c).unwrap().extradata();
        c.preset = "ultrafast".into();
        let u = VideoEncoder::open(&c).unwrap().extradata();
        assert_ne!(u, v);
    }

    fn encode_bytes(
        e: &mut VideoEncoder,
        img: &mut I420Image,
        frames: std::ops::Range<i64>,
    ) -> usize {
        let mut bytes = 0;
        let mut pkt = ff::Packet::empty();
        let (w, h) = (img.width(), img.height());
        let mut rgba = vec![0u8; (w * h * 4) as usize];
        for i in frames {
            // Noise that changes every frame, so the rate control has something to spend on.
            let mut x = (i as u32 + 1).wrapping_mul(2_654_435_761);
            for p in rgba.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *p = (x >> 24) as u8;
            }
            crate::convert::rgba_to_i420(&rgba, w as usize * 4, w, h, img).unwrap();
            e.send_frame(img, i).unwrap();
            while e.receive_packet(&mut pkt).unwrap() {
                bytes += pkt.size();
            }
        }
        bytes
    }

    #[test]
    fn set_bitrate_changes_a_running_x264() {
        let mut c = cfg(640, 360);
        c.preset = "ultrafast".into();
        c.video_bitrate_kbps = 4000;
        let mut e = VideoEncoder::open(&c).unwrap();
        let mut img = I420Image::new(640, 360).unwrap();
        // Two seconds at each rate, the first second of each left out (the VBV settling).
        encode_bytes(&mut e, &mut img, 0..60);
        let high = encode_bytes(&mut e, &mut img, 60..120);
        e.set_bitrate_kbps(1000).unwrap();
        encode_bytes(&mut e, &mut img, 120..180);
        let low = encode_bytes(&mut e, &mut img, 180..240);
        let (high_kbps, low_kbps) = (high * 8 / 1000, low * 8 / 1000);
        assert!(
            (3000..=4800).contains(&high_kbps) && (600..=1300).contains(&low_kbps),
            "{high_kbps} kb/s then {low_kbps} kb/s"
        );
        assert_eq!(e.bitrate_kbps(), 1000);
        assert!(e.set_bitrate_kbps(50).is_err());
    }

    #[test]
    fn explicit_hardware_backends_say_why_they_cannot_open() {
        for b in [VideoBackend::Vaapi, VideoBackend::Nvenc, VideoBackend::Qsv] {
            let mut c = cfg(1280, 720);
            c.encoder = b;
            match VideoEncoder::probe(&c) {
                // A machine with that GPU: nothing to check here.
                Ok(sel) => assert!(sel.contains(b.name()), "{sel}"),
                Err(MediaError::EncoderOpen { codec, reason }) => {
                    assert_eq!(Some(codec.as_str()), b.codec_name());
                    assert!(reason.contains("falls back to x264"), "{reason}");
                }
                Err(e) => panic!("{b}: {e}"),
            }
        }
    }

    #[test]
    fn nv12_interleave() {
        let (u, v) = ([1u8, 2, 3, 4], [5u8, 6, 7, 8]);
        let mut d = [0u8; 12];
        interleave_uv(&mut d, 6, &u, &v, 2, 2);
        assert_eq!(d, [1, 5, 2, 6, 0, 0, 3, 7, 4, 8, 0, 0]);
    }
}
