//! Encoder settings and output descriptions, validated before anything starts.

use crate::video::VideoBackend;
use crate::MediaError;
use crosscast_wire::FrameRate;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// x264 presets accepted by `EncoderConfig::preset`, fastest first.
pub const X264_PRESETS: &[&str] = &[
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
];

/// Live encode settings: H.264 (libx264 or a hardware encoder) video and AAC-LC (FFmpeg `aac`) audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderConfig {
    /// Frame width in pixels (even).
    pub width: u32,
    /// Frame height in pixels (even).
    pub height: u32,
    /// Constant output frame rate (exact, e.g. 60000/1001); `push_video`'s `frame_index`
    /// counts in periods of it.
    pub fps: FrameRate,
    /// Video bitrate target in kb/s (also the VBV max rate and buffer size).
    pub video_bitrate_kbps: u32,
    /// Distance between keyframes in frames (e.g. 2 × fps).
    pub keyint_frames: u32,
    /// Which H.264 encoder: `Auto` (default) uses the first hardware one that opens, else x264.
    pub encoder: VideoBackend,
    /// x264 preset, one of [`X264_PRESETS`] (fixed), or `auto` (default): starts at `veryfast`
    /// and steps along [`crate::AUTO_LADDER`] to keep up with the frame rate.
    pub preset: String,
    /// Nice value for the encoder thread (and the x264 threads it starts); `None` keeps the caller's.
    pub encoder_nice: Option<i32>,
    /// Audio sample rate in Hz (48000).
    pub sample_rate: u32,
    /// Audio channels, 1 or 2.
    pub channels: u16,
    /// AAC bitrate in kb/s (160).
    pub audio_bitrate_kbps: u32,
    /// Frames that may wait for the encoder before `push_video` drops (default) or blocks.
    pub video_queue_frames: usize,
    /// Block `push_video`/`push_audio` when the encoder is behind instead of dropping (lossless recording).
    pub block_when_full: bool,
    /// An RTMP connect or write making no progress for this long counts as a lost connection.
    pub rtmp_timeout: Duration,
    /// Write one line per encoded video frame here: `<frame index> <encoded> <handed> <taken>`,
    /// CLOCK_MONOTONIC ns when its packet left the encoder, when the output clock handed it
    /// over (before conversion) and when the encoder thread took it (0 for repeats): what
    /// `bench input` joins with its injection times.
    pub frame_times: Option<std::path::PathBuf>,
}

impl EncoderConfig {
    /// Live defaults for a size and rate: default bitrate, 2 s keyframes, encoder and preset
    /// `auto`, 48 kHz stereo 160 kb/s.
    pub fn new(width: u32, height: u32, fps: impl Into<FrameRate>) -> Self {
        let fps = fps.into();
        Self {
            width,
            height,
            fps,
            video_bitrate_kbps: Self::default_bitrate_kbps(width, height),
            keyint_frames: fps.frames_in(2.0),
            encoder: VideoBackend::Auto,
            preset: "auto".to_owned(),
            encoder_nice: None,
            sample_rate: 48_000,
            channels: 2,
            audio_bitrate_kbps: 160,
            video_queue_frames: 8,
            block_when_full: false,
            rtmp_timeout: Duration::from_secs(10),
            frame_times: None,
        }
    }

    /// Default video bitrate: 4500 kb/s at 1280x720, 6000 kb/s at 1920x1080, scaled by area elsewhere.
    pub fn default_bitrate_kbps(width: u32, height: u32) -> u32 {
        let px = u64::from(width) * u64::from(height);
        let (p720, p1080) = (1280 * 720, 1920 * 1080);
        let kbps = if px >= p1080 {
            6000 * px / p1080
        } else if px >= p720 {
            // Between the two anchors, interpolate so sizes like 1600x900 get a sensible rate.
            4500 + 1500 * (px - p720) / (p1080 - p720)
        } else {
            4500 * px / p720
        };
        kbps.clamp(300, 50_000) as u32
    }

    pub(crate) fn validate(&self) -> Result<(), MediaError> {
        let bad = |m: String| Err(MediaError::InvalidConfig(m));
        if self.width == 0 || self.height == 0 || self.width % 2 != 0 || self.height % 2 != 0 {
            return bad(format!(
                "size {}x{} must be even and non-zero",
                self.width, self.height
            ));
        }
        if self.width > 8192 || self.height > 8192 {
            return bad(format!(
                "size {}x{} is larger than 8192x8192",
                self.width, self.height
            ));
        }
        if FrameRate::new(u64::from(self.fps.num()), u64::from(self.fps.den())).is_err() {
            return bad(format!("fps {} must be 1..=240", self.fps));
        }
        if !(100..=100_000).contains(&self.video_bitrate_kbps) {
            return bad(format!(
                "video bitrate {} kb/s must be 100..=100000",
                self.video_bitrate_kbps
            ));
        }
        if !(1..=10_000).contains(&self.keyint_frames) {
            return bad(format!(
                "keyint {} frames must be 1..=10000",
                self.keyint_frames
            ));
        }
        if self.preset != "auto" && !X264_PRESETS.contains(&self.preset.as_str()) {
            return bad(format!(
                "preset {:?} is not auto or one of {}",
                self.preset,
                X264_PRESETS.join(", ")
            ));
        }
        if let Some(n) = self.encoder_nice {
            if !(-20..=19).contains(&n) {
                return bad(format!("encoder nice {n} must be -20..=19"));
            }
        }
        if ![
            8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000,
        ]
        .contains(&self.sample_rate)
        {
            return bad(format!(
                "sample rate {} Hz is not an AAC rate",
                self.sample_rate
            ));
        }
        if !(1..=2).contains(&self.channels) {
            return bad(format!("{} audio channels: only 1 or 2", self.channels));
        }
        if !(32..=512).contains(&self.audio_bitrate_kbps) {
            return bad(format!(
                "audio bitrate {} kb/s must be 32..=512",
                self.audio_bitrate_kbps
            ));
        }
        if !(1..=120).contains(&self.video_queue_frames) {
            return bad(format!(
                "video queue {} frames must be 1..=120",
                self.video_queue_frames
            ));
        }
        if self.rtmp_timeout < Duration::from_millis(200)
            || self.rtmp_timeout > Duration::from_secs(300)
        {
            return bad(format!(
                "RTMP timeout {:?} must be 200 ms..=300 s",
                self.rtmp_timeout
            ));
        }
        Ok(())
    }
}

/// Where the one encode goes; any number of each at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSpec {
    /// A local recording; `.flv` or `.mp4` (fragmented MP4) by extension.
    File(PathBuf),
    /// An RTMP ingest, `rtmp://host[:port]/app/key` (or `rtmps://`).
    Rtmp(String),
}

/// Container for a local file, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// FLV.
    Flv,
    /// Fragmented MP4 (playable after a crash).
    Mp4,
}

impl FileFormat {
    /// Picks the container from the path's extension (case-insensitive).
    pub fn from_path(path: &Path) -> Result<Self, MediaError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("flv") => Ok(Self::Flv),
            Some("mp4") => Ok(Self::Mp4),
            _ => Err(MediaError::UnsupportedExtension {
                path: path.to_owned(),
            }),
        }
    }

    pub(crate) fn muxer_name(self) -> &'static str {
        match self {
            Self::Flv => "flv",
            Self::Mp4 => "mp4",
        }
    }
}

/// A checked RTMP URL: `rtmp[s]://host[:port]/app[/more]/key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    url: String,
    display: String,
}

impl RtmpUrl {
    /// Checks the URL's shape; the stream key never appears in errors or `display()`.
    pub fn parse(url: &str) -> Result<Self, MediaError> {
        let masked = mask_key(url);
        let err = |reason: &str| MediaError::InvalidRtmpUrl {
            url: masked.clone(),
            reason: reason.to_owned(),
        };
        if url.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(err("contains spaces or control characters"));
        }
        let rest = url
            .strip_prefix("rtmp://")
            .or_else(|| url.strip_prefix("rtmps://"))
            .ok_or_else(|| err("must start with rtmp:// or rtmps://"))?;
        let (authority, path) = rest
            .split_once('/')
            .ok_or_else(|| err("missing /app/key after the host"))?;
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (h, after) = v6
                    .split_once(']')
                    .ok_or_else(|| err("unclosed [ in the host"))?;
                match after {
                    "" => (h, None),
                    _ => (
                        h,
                        Some(after.strip_prefix(':').ok_or_else(|| err("junk after ]"))?),
                    ),
                }
            }
            None => match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            },
        };
        if let Some(p) = port {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => {}
                _ => return Err(err("port must be a number 1..=65535")),
            }
        }
        if host.is_empty() || host.contains('@') {
            return Err(err("missing host (user info is not supported)"));
        }
        let path = path.split(['?', '#']).next().unwrap_or("");
        let parts: Vec<&str> = path.split('/').collect();
        if parts.len() < 2 || parts.iter().any(|p| p.is_empty()) {
            return Err(err(
                "path must be /app/key with non-empty app and stream key",
            ));
        }
        Ok(Self {
            url: url.to_owned(),
            display: masked,
        })
    }

    /// The full URL, stream key included, for the RTMP client.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// The URL with the stream key replaced by `***`, safe for logs and status lines.
    pub fn display(&self) -> &str {
        &self.display
    }
}

/// Stream keys are credentials: keep scheme, host and app, hide the last path segment.
fn mask_key(url: &str) -> String {
    match url.rfind('/') {
        Some(i) if url[..i].matches('/').count() >= 3 => format!("{}/***", &url[..i]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtmp_urls() {
        assert!(RtmpUrl::parse("rtmp://127.0.0.1:1935/live/key").is_ok());
        assert!(RtmpUrl::parse("rtmp://example.com/live/key").is_ok());
        assert!(RtmpUrl::parse("rtmps://a.b/app/sub/key").is_ok());
        for bad in [
            "http://x/live/key",
            "rtmp://",
            "rtmp://host",
            "rtmp://host/live",
            "rtmp://host/live/",
            "rtmp://:1935/live/key",
            "rtmp://host:abc/live/key",
            "rtmp://host:0/live/key",
            "rtmp://host:99999/live/key",
            "rtmp://host/live/ke y",
        ] {
            assert!(
                matches!(RtmpUrl::parse(bad), Err(MediaError::InvalidRtmpUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn key_is_masked() {
        let u = RtmpUrl::parse("rtmp://h:1/live/secret").unwrap();
        assert_eq!(u.display(), "rtmp://h:1/live/***");
        let e = RtmpUrl::parse("rtmp://h:x/live/secret").unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
    }

    #[test]
    fn bitrates() {
        assert_eq!(EncoderConfig::default_bitrate_kbps(1280, 720), 4500);
        assert_eq!(EncoderConfig::default_bitrate_kbps(1920, 1080), 6000);
        assert!(EncoderConfig::default_bitrate_kbps(640, 360) < 4500);
    }

    #[test]
    fn config_validation() {
        assert!(EncoderConfig::new(1280, 720, 60).validate().is_ok());
        assert!(EncoderConfig::new(1281, 720, 60).validate().is_err());
        let mut c = EncoderConfig::new(1280, 720, 60);
        c.preset = "warp".into();
        assert!(c.validate().is_err());
        c.preset = "auto".into();
        assert!(c.validate().is_ok());
    }

    #[test]
    fn extensions() {
        assert_eq!(
            FileFormat::from_path(Path::new("a.FLV")).unwrap(),
            FileFormat::Flv
        );
        assert_eq!(
            FileFormat::from_path(Path::new("/x/a.mp4")).unwrap(),
            FileFormat::Mp4
        );
        assert!(FileFormat::from_path(Path::new("a.mkv")).is_err());
        assert!(FileFormat::from_path(Path::new("a")).is_err());
    }
}
