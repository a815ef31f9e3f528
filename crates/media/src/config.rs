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
    /// A push output's (RTMP, RTMPS, SRT) connect or write making no progress for this long
    /// counts as a lost connection.
    pub rtmp_timeout: Duration,
    /// How `rtmps://` outputs verify the server.
    pub tls: TlsOptions,
    /// Write one line per encoded video frame here: `<frame index> <encoded> <handed> <taken>`,
    /// CLOCK_MONOTONIC ns when its packet left the encoder, when the output clock handed it
    /// over (before conversion) and when the encoder thread took it (0 for repeats): what
    /// `bench input` joins with its injection times.
    pub frame_times: Option<std::path::PathBuf>,
    /// Adaptive bitrate for network outputs: `Some(min)` lets their video bitrate step down
    /// to `min` kb/s while a link backs up (and back up after sustained headroom); `None`
    /// keeps it fixed. Recordings keep `video_bitrate_kbps` (see `shared_encode`).
    pub adaptive_min_kbps: Option<u32>,
    /// With adaptive bitrate and both recordings and network outputs, a lowered live bitrate
    /// normally runs on a second video encode (only while it is lowered) so recordings keep
    /// the full bitrate; `true` keeps one encode and lets recordings follow the live bitrate
    /// (half the video CPU while a link is squeezed).
    pub shared_encode: bool,
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
            tls: TlsOptions::default(),
            frame_times: None,
            adaptive_min_kbps: Some(Self::default_min_bitrate_kbps(width, height)),
            shared_encode: false,
        }
    }

    /// Default floor for adaptive bitrate: a quarter of the default bitrate, at least 300 kb/s.
    pub fn default_min_bitrate_kbps(width: u32, height: u32) -> u32 {
        (Self::default_bitrate_kbps(width, height) / 4).max(300)
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
        if let Some(min) = self.adaptive_min_kbps {
            // Above the bitrate it just means "never lower it".
            if min < 100 {
                return bad(format!("minimum bitrate {min} kb/s must be at least 100"));
            }
        }
        if self.rtmp_timeout < Duration::from_millis(200)
            || self.rtmp_timeout > Duration::from_secs(300)
        {
            return bad(format!(
                "push timeout {:?} must be 200 ms..=300 s",
                self.rtmp_timeout
            ));
        }
        self.tls.check()
    }
}

/// Where the one encode goes; any number of each at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSpec {
    /// A local recording; `.flv` or `.mp4` (fragmented MP4) by extension.
    File(PathBuf),
    /// A network output; the scheme picks the protocol: `rtmp://host[:port]/app/key`,
    /// `rtmps://…` (TLS, verified unless [`TlsOptions::insecure`]) or
    /// `srt://host:port[?streamid=…&passphrase=…&pbkeylen=…&latency=µs]` (MPEG-TS, caller mode).
    Push(String),
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

/// How `rtmps://` outputs check the server (FFmpeg's `tls` layer checks nothing by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Do not verify the server's certificate (`--insecure-tls`): anyone on the path can read
    /// the stream key. Off by default.
    pub insecure: bool,
    /// A PEM file of extra CA certificates trusted besides the system's store (`--ca-file`).
    pub ca_file: Option<PathBuf>,
}

/// The largest `ca_file` accepted; CA bundles are a few hundred KiB.
const CA_FILE_MAX: u64 = 8 << 20;

impl TlsOptions {
    /// The system's CA bundle (Debian/Ubuntu), added to `ca_file` when it exists.
    pub const SYSTEM_BUNDLE: &'static str = "/etc/ssl/certs/ca-certificates.crt";

    /// Checks that `ca_file`, if set, is a readable file holding a PEM certificate.
    pub fn check(&self) -> Result<(), MediaError> {
        let Some(path) = &self.ca_file else {
            return Ok(());
        };
        let err = |reason: String| MediaError::CaFile {
            path: path.clone(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        if !meta.is_file() {
            return Err(err("not a regular file".into()));
        }
        if meta.len() > CA_FILE_MAX {
            return Err(err(format!("larger than {} MiB", CA_FILE_MAX >> 20)));
        }
        let text = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        let text = String::from_utf8_lossy(&text);
        let begin = "-----BEGIN CERTIFICATE-----";
        match text.find(begin) {
            Some(i) if text[i + begin.len()..].contains("-----END CERTIFICATE-----") => Ok(()),
            _ => Err(err(
                "holds no PEM certificate (-----BEGIN CERTIFICATE----- … -----END CERTIFICATE-----)"
                    .into(),
            )),
        }
    }
}

/// The protocol of a push output, from its URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushScheme {
    /// `rtmp://`: FLV over RTMP.
    Rtmp,
    /// `rtmps://`: FLV over RTMP over TLS.
    Rtmps,
    /// `srt://`: MPEG-TS over SRT, caller mode.
    Srt,
}

impl PushScheme {
    /// The libavformat muxer this protocol carries.
    pub(crate) fn muxer_name(self) -> &'static str {
        match self {
            Self::Rtmp | Self::Rtmps => "flv",
            Self::Srt => "mpegts",
        }
    }
}

/// SRT options taken from the URL's query, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct SrtParams {
    streamid: Option<String>,
    passphrase: Option<String>,
    pbkeylen: Option<u8>,
    /// FFmpeg's `latency` option: microseconds.
    latency_us: Option<u64>,
}

/// Query keys an `srt://` URL may carry.
pub const SRT_KEYS: &[&str] = &["streamid", "passphrase", "pbkeylen", "latency", "mode"];
/// Query keys whose values are not secrets (shown in display forms).
const PUBLIC_KEYS: &[&str] = &["pbkeylen", "latency", "mode"];
/// Most SRT latency accepted: 60 s (FFmpeg's option is in microseconds).
const SRT_LATENCY_MAX_US: u64 = 60_000_000;
/// SRT's limit on a stream id.
const SRT_STREAMID_MAX: usize = 512;

/// A checked push URL: `rtmp[s]://host[:port]/app[/more]/key` or `srt://host:port[?query]`.
///
/// Secrets (the RTMP stream key, the SRT `streamid` and `passphrase`) never appear in errors,
/// in [`PushUrl::display`] or in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct PushUrl {
    scheme: PushScheme,
    /// What FFmpeg opens: the URL as given for RTMP, `srt://host:port` for SRT (its options go
    /// in the options dictionary, already percent-decoded).
    open: String,
    display: String,
    /// Strings to scrub from any text shown (raw and decoded forms).
    secrets: Vec<String>,
    srt: SrtParams,
}

impl std::fmt::Debug for PushUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PushUrl").field(&self.display).finish()
    }
}

impl PushUrl {
    /// Checks the URL's shape and options; nothing in the error shows a secret.
    pub fn parse(url: &str) -> Result<Self, MediaError> {
        let masked = mask_url(url);
        let err = |reason: String| MediaError::InvalidPushUrl {
            url: masked.clone(),
            reason,
        };
        if url.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(err("contains spaces or control characters".into()));
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(err(
                "not a URL: it must start with rtmp://, rtmps:// or srt://".into(),
            ));
        };
        let lower = scheme.to_ascii_lowercase();
        let scheme = match lower.as_str() {
            "rtmp" => PushScheme::Rtmp,
            "rtmps" => PushScheme::Rtmps,
            "srt" => PushScheme::Srt,
            other => {
                let shown: String = other.chars().take(16).collect();
                return Err(err(format!(
                    "unsupported scheme {shown}:// (use rtmp://, rtmps:// or srt://)"
                )));
            }
        };
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        check_authority(authority, scheme == PushScheme::Srt).map_err(err)?;
        match scheme {
            PushScheme::Rtmp | PushScheme::Rtmps => {
                let path = tail.strip_prefix('/').unwrap_or(tail);
                let path = path.split(['?', '#']).next().unwrap_or("");
                let parts: Vec<&str> = path.split('/').collect();
                if tail.is_empty() || parts.len() < 2 || parts.iter().any(|p| p.is_empty()) {
                    return Err(err(
                        "the path must be /app/key with a non-empty app and stream key".into(),
                    ));
                }
                let key = parts[parts.len() - 1];
                let mut secrets = vec![url.to_owned(), key.to_owned()];
                if let Some((_, q)) = tail.split_once('?') {
                    secrets.push(q.to_owned());
                }
                Ok(Self {
                    scheme,
                    // FFmpeg looks protocols up by their lower-case name.
                    open: format!("{lower}://{rest}"),
                    display: masked,
                    secrets,
                    srt: SrtParams::default(),
                })
            }
            PushScheme::Srt => {
                let (path, query) = match tail.split_once('?') {
                    Some((p, q)) => (p, Some(q)),
                    None => (tail, None),
                };
                if !path.is_empty() && path != "/" {
                    return Err(err(
                        "an srt:// URL has no path: srt://host:port?streamid=…".into()
                    ));
                }
                let (srt, mut secrets) = parse_srt_query(query.unwrap_or("")).map_err(err)?;
                secrets.push(url.to_owned());
                Ok(Self {
                    scheme,
                    open: format!("srt://{authority}"),
                    display: masked,
                    secrets,
                    srt,
                })
            }
        }
    }

    /// The protocol.
    pub fn scheme(&self) -> PushScheme {
        self.scheme
    }

    /// The URL with its secrets replaced by `***`, safe for logs and status lines.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// What FFmpeg opens (secrets included for RTMP; SRT's options go in `io_options`).
    pub(crate) fn open_url(&self) -> &str {
        &self.open
    }

    /// The protocol's I/O options for `avio_open2`. For `rtmps://` the rtmp protocol hands them
    /// down to its `tls` layer: `tls_verify` (always set, so FFmpeg never silently trusts) and
    /// `ca_file`.
    pub(crate) fn io_options(&self, verify: bool, ca_file: Option<&str>) -> Vec<(String, String)> {
        let mut o = Vec::new();
        match self.scheme {
            PushScheme::Rtmp => {}
            PushScheme::Rtmps => {
                o.push(("tls_verify".into(), if verify { "1" } else { "0" }.into()));
                if let Some(f) = ca_file {
                    o.push(("ca_file".into(), f.into()));
                }
            }
            PushScheme::Srt => {
                o.push(("mode".into(), "caller".into()));
                // Live mode closes without waiting for the receiver's acknowledgements, which
                // cuts the last fraction of a second off a finished stream: wait up to 1 s.
                o.push(("linger".into(), "1".into()));
                let s = &self.srt;
                if let Some(v) = &s.streamid {
                    o.push(("streamid".into(), v.clone()));
                }
                if let Some(v) = &s.passphrase {
                    o.push(("passphrase".into(), v.clone()));
                }
                if let Some(v) = s.pbkeylen {
                    o.push(("pbkeylen".into(), v.to_string()));
                }
                if let Some(v) = s.latency_us {
                    o.push(("latency".into(), v.to_string()));
                }
            }
        }
        o
    }

    /// `text` with every secret of this URL replaced by `***` (for FFmpeg's messages).
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut t = text.to_owned();
        // Longest first, so a secret that contains another is replaced whole.
        let mut secrets: Vec<&String> = self.secrets.iter().filter(|s| s.len() >= 3).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        for s in secrets {
            let with = if s.contains("://") {
                self.display.as_str()
            } else {
                "***"
            };
            t = t.replace(s.as_str(), with);
        }
        t
    }
}

/// Checks `host[:port]` (IPv6 in brackets); SRT needs the port.
fn check_authority(authority: &str, port_required: bool) -> Result<(), String> {
    if authority.contains('@') {
        return Err("user info (user@host) is not supported".into());
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| "unclosed [ in the host".to_owned())?;
            match after {
                "" => (h, None),
                _ => (
                    h,
                    Some(
                        after
                            .strip_prefix(':')
                            .ok_or_else(|| "junk after ] in the host".to_owned())?,
                    ),
                ),
            }
        }
        None => match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err("missing host".into());
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '%'))
    {
        return Err("the host has characters a host name cannot have".into());
    }
    match port {
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(()),
            _ => Err("the port must be a number 1..=65535".into()),
        },
        None if port_required => Err("missing port: srt://host:port".into()),
        None => Ok(()),
    }
}

/// Parses and checks an SRT query; returns the options and the secrets to scrub.
fn parse_srt_query(query: &str) -> Result<(SrtParams, Vec<String>), String> {
    let mut p = SrtParams::default();
    let mut secrets = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for item in query.split('&').filter(|i| !i.is_empty()) {
        let Some((key, raw)) = item.split_once('=') else {
            return Err("a query item has no '=': write key=value".into());
        };
        let Some(&known) = SRT_KEYS.iter().find(|k| **k == key) else {
            let named = key.len() <= 32
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            return Err(if named {
                format!(
                    "unknown query key {key:?} (accepted: {})",
                    SRT_KEYS.join(", ")
                )
            } else {
                format!("an unknown query key (accepted: {})", SRT_KEYS.join(", "))
            });
        };
        if seen.contains(&known) {
            return Err(format!("{known} is given twice"));
        }
        seen.push(known);
        let value = percent_decode(raw).map_err(|e| format!("{known}: {e}"))?;
        if value.is_empty() {
            return Err(format!("{known} is empty"));
        }
        match known {
            "streamid" => {
                if value.len() > SRT_STREAMID_MAX {
                    return Err(format!("streamid is longer than {SRT_STREAMID_MAX} bytes"));
                }
                secrets.extend([raw.to_owned(), value.clone()]);
                p.streamid = Some(value);
            }
            "passphrase" => {
                secrets.extend([raw.to_owned(), value.clone()]);
                // SRT counts bytes (ASCII characters).
                let n = value.len();
                if !(10..=79).contains(&n) {
                    return Err(format!(
                        "the passphrase is {n} bytes long; SRT needs 10..=79 characters"
                    ));
                }
                p.passphrase = Some(value);
            }
            "pbkeylen" => match value.parse::<u8>() {
                Ok(n @ (16 | 24 | 32)) => p.pbkeylen = Some(n),
                _ => return Err("pbkeylen must be 16, 24 or 32 (bytes of AES key)".into()),
            },
            "latency" => match value.parse::<u64>() {
                Ok(n) if n <= SRT_LATENCY_MAX_US => p.latency_us = Some(n),
                _ => {
                    return Err(format!(
                        "latency must be a whole number of microseconds 0..={SRT_LATENCY_MAX_US} (e.g. 200000 for 200 ms)"
                    ))
                }
            },
            "mode" => match value.as_str() {
                "caller" => {}
                "listener" | "rendezvous" => {
                    return Err(format!(
                        "mode={value} is not supported: crosscast only calls out (mode=caller); run the listener at the far end"
                    ))
                }
                _ => return Err("mode must be caller".into()),
            },
            _ => unreachable!("every key of SRT_KEYS is handled"),
        }
    }
    if p.pbkeylen.is_some() && p.passphrase.is_none() {
        return Err(
            "missing passphrase: pbkeylen sets the key length of an encryption that needs a passphrase"
                .into(),
        );
    }
    Ok((p, secrets))
}

/// Decodes `%XX` escapes (and nothing else: `+` stays `+`); the result must be UTF-8.
fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "a bad %-escape (write %XX with two hex digits)".to_owned())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "%-escapes that are not UTF-8".to_owned())
}

/// Masks what may be a credential in any URL, well-formed or not: user info, the last path
/// segment (the RTMP stream key) and every query value but the few known not to be secret.
fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL: show at most what looks like its scheme.
        return match url.split_once(':') {
            Some((head, _))
                if (1..=16).contains(&head.len())
                    && head.chars().all(|c| c.is_ascii_alphanumeric()) =>
            {
                format!("{head}:***")
            }
            _ => "***".to_owned(),
        };
    };
    let scheme: String = scheme.chars().take(16).collect();
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rfind('@') {
        Some(i) => format!("***@{}", &authority[i + 1..]),
        None => authority.to_owned(),
    };
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };
    let path = match path.rfind('/') {
        Some(i) if i + 1 < path.len() => format!("{}/***", &path[..i]),
        _ => path.to_owned(),
    };
    let mut out = format!("{scheme}://{authority}{path}");
    if let Some(q) = query {
        let items: Vec<String> = q
            .split('&')
            .map(|item| match item.split_once('=') {
                Some((k, v)) if PUBLIC_KEYS.contains(&k) && v.len() <= 16 => item.to_owned(),
                Some((k, _)) if k.len() <= 32 && !k.contains('%') => format!("{k}=***"),
                _ => "***".to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&items.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> String {
        match PushUrl::parse(url) {
            Err(e @ MediaError::InvalidPushUrl { .. }) => e.to_string(),
            other => panic!("{url}: expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn rtmp_urls() {
        assert!(PushUrl::parse("rtmp://127.0.0.1:1935/live/key").is_ok());
        assert!(PushUrl::parse("rtmp://example.com/live/key").is_ok());
        assert!(PushUrl::parse("rtmp://[::1]:1935/live/key").is_ok());
        let upper = PushUrl::parse("RTMP://h/live/key").unwrap();
        assert_eq!(upper.open_url(), "rtmp://h/live/key");
        let s = PushUrl::parse("rtmps://a.b/app/sub/key").unwrap();
        assert_eq!(s.scheme(), PushScheme::Rtmps);
        assert_eq!(s.display(), "rtmps://a.b/app/sub/***");
        for (bad, why) in [
            ("http://x/live/key", "unsupported scheme http://"),
            ("udp://127.0.0.1:9000", "unsupported scheme udp://"),
            ("rtmp:/x/live/key", "not a URL"),
            ("rtmp://", "missing host"),
            ("rtmp://host", "/app/key"),
            ("rtmp://host/live", "/app/key"),
            ("rtmp://host/live/", "/app/key"),
            ("rtmp://:1935/live/key", "missing host"),
            ("rtmp://host:abc/live/key", "port"),
            ("rtmp://host:0/live/key", "port"),
            ("rtmp://host:99999/live/key", "port"),
            ("rtmp://host/live/ke y", "spaces"),
            ("rtmp://u:p@host/live/key", "user info"),
            ("rtmp://[::1/live/key", "unclosed"),
        ] {
            let e = refused(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn srt_urls() {
        let u = PushUrl::parse(
            "srt://127.0.0.1:9000?streamid=%23!::r=live/s3cret,m=publish&passphrase=0123456789abc&pbkeylen=32&latency=200000",
        )
        .unwrap();
        assert_eq!(u.scheme(), PushScheme::Srt);
        assert_eq!(u.open_url(), "srt://127.0.0.1:9000");
        let o = u.io_options(true, None);
        assert!(o.contains(&("mode".into(), "caller".into())));
        assert!(o.contains(&("streamid".into(), "#!::r=live/s3cret,m=publish".into())));
        assert!(o.contains(&("passphrase".into(), "0123456789abc".into())));
        assert!(o.contains(&("pbkeylen".into(), "32".into())));
        assert!(o.contains(&("latency".into(), "200000".into())));
        assert!(PushUrl::parse("srt://h:1").is_ok());
        assert!(PushUrl::parse("srt://h:1/?mode=caller").is_ok());
        for (bad, why) in [
            ("srt://h", "missing port"),
            ("srt://:9000", "missing host"),
            ("srt://h:9000/live", "no path"),
            (
                "srt://h:9000?mode=listener",
                "mode=listener is not supported",
            ),
            (
                "srt://h:9000?mode=rendezvous",
                "mode=rendezvous is not supported",
            ),
            ("srt://h:9000?mode=x", "mode must be caller"),
            ("srt://h:9000?passphrase=short", "SRT needs 10..=79"),
            ("SRT://h:9000?passphrase=short", "SRT needs 10..=79"),
            ("srt://h:9000?pbkeylen=16", "missing passphrase"),
            (
                "srt://h:9000?passphrase=0123456789&pbkeylen=17",
                "16, 24 or 32",
            ),
            ("srt://h:9000?latency=abc", "microseconds"),
            ("srt://h:9000?latency=-1", "microseconds"),
            ("srt://h:9000?latency=99999999999", "microseconds"),
            ("srt://h:9000?bogus=1", "unknown query key \"bogus\""),
            ("srt://h:9000?streamid", "no '='"),
            ("srt://h:9000?streamid=", "streamid is empty"),
            ("srt://h:9000?streamid=a&streamid=b", "twice"),
            ("srt://h:9000?streamid=%zz", "bad %-escape"),
        ] {
            let e = refused(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
        let long = format!("srt://h:9000?passphrase={}", "x".repeat(80));
        assert!(refused(&long).contains("80 bytes"));
        assert!(PushUrl::parse(&format!("srt://h:9000?passphrase={}", "x".repeat(79))).is_ok());
    }

    #[test]
    fn secrets_are_masked_everywhere() {
        let u = PushUrl::parse("rtmp://h:1/live/SECRETKEY").unwrap();
        assert_eq!(u.display(), "rtmp://h:1/live/***");
        assert!(!format!("{u:?}").contains("SECRETKEY"));
        let u = PushUrl::parse(
            "srt://h:9?streamid=SECRETID&passphrase=SECRETPASS123&latency=1000&pbkeylen=16",
        )
        .unwrap();
        assert_eq!(
            u.display(),
            "srt://h:9?streamid=***&passphrase=***&latency=1000&pbkeylen=16"
        );
        assert!(!format!("{u:?}").contains("SECRET"));
        let scrubbed = u.scrub(
            "Connection to srt://h:9?streamid=SECRETID&passphrase=SECRETPASS123&latency=1000&pbkeylen=16 failed: SECRETID",
        );
        assert!(!scrubbed.contains("SECRET"), "{scrubbed}");
        // Every refusal, whatever is wrong, keeps the secrets out of its message.
        for bad in [
            "rtmp://h:x/live/SECRETKEY",
            "rtmp://u:SECRETPW@h/live/SECRETKEY",
            "rtmp://h/SECRETKEY",
            "http://h/live/SECRETKEY?token=SECRETTOKEN",
            "rtmp:/h/live/SECRETKEY",
            "SECRETJUNK",
            "srt://h?streamid=SECRETID",
            "srt://h:9?streamid=SECRETID&passphrase=SECRETPASS123&bogus=1",
            "srt://h:9?streamid=SECRETID&passphrase=SECRET",
            "srt://h:9?streamid=SECRETID&pbkeylen=24",
            "srt://h:9?SECRETITEM",
            "srt://h:9?SECRETKEYNAMEISLONGERTHANTHIRTYTWOCHARS=1",
            "srt://h:9?passphrase=SECRETPASS123&mode=listener",
            "srt://h:9/SECRETPATH",
            "srt://h:9?streamid=SECRET ID",
        ] {
            let e = refused(bad);
            assert!(!e.contains("SECRET"), "{bad}: {e}");
        }
    }

    #[test]
    fn ca_file_checks() {
        let dir = tempfile::tempdir().unwrap();
        let missing = TlsOptions {
            insecure: false,
            ca_file: Some(dir.path().join("none.pem")),
        };
        assert!(matches!(missing.check(), Err(MediaError::CaFile { .. })));
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let e = TlsOptions {
            insecure: false,
            ca_file: Some(junk),
        }
        .check()
        .unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        let dir_as_file = TlsOptions {
            insecure: false,
            ca_file: Some(dir.path().to_owned()),
        };
        assert!(dir_as_file.check().is_err());
        let good = dir.path().join("ca.pem");
        std::fs::write(
            &good,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(TlsOptions {
            insecure: false,
            ca_file: Some(good)
        }
        .check()
        .is_ok());
        assert!(TlsOptions::default().check().is_ok());
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
