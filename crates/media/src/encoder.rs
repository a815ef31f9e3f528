//! `LiveEncoder`: one H.264 + AAC encode on its own thread, fanned out to files and RTMP ingests.
//!
//! Threads and queues:
//! - the caller (the host's output-clock thread) converts RGBA → I420 into a pooled image and
//!   hands it over a bounded channel; audio blocks go over the same channel, so order is kept;
//! - the encoder thread (nice `encoder_nice`, inherited by the x264 threads it starts) frames
//!   audio, encodes both streams and writes local files directly; it times itself per frame
//!   (`load.rs`) and, with `--preset auto`, reopens x264 at a faster or slower preset; with
//!   adaptive bitrate (`abr.rs`) it lowers the push outputs' bitrate, on a second encode while
//!   recordings need the full one;
//! - each push output (RTMP, RTMPS, SRT) has its own writer thread behind a bounded queue (see `push`).

use crate::abr::{BitrateController, LinkView};
use crate::audio::AudioFramer;
use crate::config::{EncoderConfig, FileFormat, OutputSpec, PushScheme, PushUrl};
use crate::convert::I420Image;
use crate::ffi_io::IoWatch;
use crate::load::{LoadController, LoadPolicy, Step, AUTO_LADDER};
use crate::mux::{EncodedPacket, Kind, Muxer, StreamSetup};
use crate::stats::{Counters, EncoderStats, OutputKind, OutputShared, OutputState};
use crate::video::VideoEncoder;
use crate::{push, MediaError};
use crossbeam_channel::{bounded, unbounded, Receiver, Sender, TrySendError};
use crosscast_wire::PixelOrder;
use ffmpeg_next as ff;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// AAC-LC frame length in samples per channel.
const AAC_FRAME: usize = 1024;
/// Audio blocks that may wait for the encoder before `push_audio` drops one.
const AUDIO_QUEUE_BLOCKS: usize = 512;
/// How long `finish` lets RTMP writers send their queued tail before aborting their I/O.
const RTMP_FINISH_WAIT: Duration = Duration::from_secs(5);
/// How long an aborted RTMP writer gets to return (FFmpeg polls the abort every ~100 ms).
const RTMP_ABORT_WAIT: Duration = Duration::from_secs(3);

enum Msg {
    /// A frame, its pts and when it was handed to `push_pixels` (CLOCK_MONOTONIC ns).
    Video(I420Image, i64, u64),
    /// Encode the last video frame again at this pts.
    Repeat(i64),
    Audio(Vec<f32>, u64),
}

/// CLOCK_MONOTONIC in nanoseconds, the clock every process of a run stamps with.
fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Sets FFmpeg's global state once: logging captured, not printed (errors come back as values).
pub(crate) fn init_ffmpeg() -> Result<(), MediaError> {
    static INIT: Once = Once::new();
    static RESULT: Mutex<Option<String>> = Mutex::new(None);
    INIT.call_once(|| {
        if let Err(e) = ff::init() {
            *RESULT.lock().unwrap_or_else(PoisonError::into_inner) = Some(e.to_string());
        }
        // Nothing on stderr; error lines are kept for the push writers' messages.
        crate::ffi_io::install_log_capture();
    });
    match RESULT
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
    {
        Some(e) => Err(MediaError::EncoderOpen {
            codec: "ffmpeg".into(),
            reason: e,
        }),
        None => Ok(()),
    }
}

// The host moves the encoder into its output-clock thread.
const _: fn() = || {
    fn is_send<T: Send>() {}
    is_send::<LiveEncoder>();
};

/// A running live encode; see the module docs for the threads behind it.
pub struct LiveEncoder {
    cfg: EncoderConfig,
    tx: Option<Sender<Msg>>,
    free_rx: Receiver<I420Image>,
    spare: Vec<I420Image>,
    /// Scaler for frames of another size than the output, kept while that size lasts.
    fitter: Option<crate::fit::Fitter>,
    images_allocated: usize,
    last_frame_index: Option<u64>,
    counters: Arc<Counters>,
    outputs: Vec<Arc<OutputShared>>,
    stopped: Arc<Mutex<Option<String>>>,
    encoder_thread: Option<JoinHandle<()>>,
    rtmp_threads: Vec<JoinHandle<()>>,
    rtmp_watches: Vec<Arc<IoWatch>>,
    fps_window: Mutex<(Instant, u64, f64)>,
}

struct FileOut {
    muxer: Option<Muxer>,
    shared: Arc<OutputShared>,
}

struct RtmpOut {
    tx: Sender<Arc<EncodedPacket>>,
    need_key: bool,
    shared: Arc<OutputShared>,
}

/// Validated outputs, before anything is opened.
enum Planned {
    File(PathBuf, FileFormat, String),
    Push(PushUrl),
}

fn plan(outputs: &[OutputSpec]) -> Result<Vec<Planned>, MediaError> {
    outputs
        .iter()
        .map(|o| match o {
            OutputSpec::File(path) => {
                let format = FileFormat::from_path(path)?;
                let s = path.to_str().ok_or_else(|| MediaError::InvalidPath {
                    path: path.clone(),
                    reason: "not valid UTF-8".into(),
                })?;
                if s.contains('\0') {
                    return Err(MediaError::InvalidPath {
                        path: path.clone(),
                        reason: "contains a NUL byte".into(),
                    });
                }
                // libavformat would read "name:rest" as a protocol; make plain paths explicit.
                let url = if path.is_absolute() || s.starts_with("./") {
                    s.to_owned()
                } else {
                    format!("./{s}")
                };
                Ok(Planned::File(path.clone(), format, url))
            }
            OutputSpec::Push(url) => Ok(Planned::Push(PushUrl::parse(url)?)),
        })
        .collect()
}

impl LiveEncoder {
    /// Opens the encoders and every file now, starts the push writers (which connect in the background).
    pub fn start(cfg: EncoderConfig, outputs: &[OutputSpec]) -> Result<Self, MediaError> {
        cfg.validate()?;
        if outputs.is_empty() {
            return Err(MediaError::InvalidConfig("no outputs given".into()));
        }
        let planned = plan(outputs)?;
        // Only when an rtmps:// output will use it: the combined CA file is a temp file.
        let tls = if planned
            .iter()
            .any(|p| matches!(p, Planned::Push(u) if u.scheme() == PushScheme::Rtmps))
        {
            push::TlsSetup::new(&cfg.tls)?
        } else {
            push::TlsSetup {
                verify: !cfg.tls.insecure,
                ca_bundle: None,
            }
        };
        init_ffmpeg()?;

        let counters = Arc::new(Counters::default());
        let stopped = Arc::new(Mutex::new(None));
        let (tx, rx) = bounded(cfg.video_queue_frames + AUDIO_QUEUE_BLOCKS);
        let (free_tx, free_rx) = unbounded();
        let (init_tx, init_rx) = bounded::<Result<StreamSetup, MediaError>>(1);

        // One status record per output, in the caller's order. RTMP writers are started after
        // the encoder opens, since they need its codec parameters.
        let mut all_shared = Vec::new();
        let mut file_plans = Vec::new();
        let mut rtmp_plans = Vec::new();
        for p in planned {
            match p {
                Planned::File(path, format, url) => {
                    let kind = match format {
                        FileFormat::Flv => OutputKind::FlvFile,
                        FileFormat::Mp4 => OutputKind::Mp4File,
                    };
                    let shared =
                        OutputShared::new(path.display().to_string(), kind, OutputState::Recording);
                    all_shared.push(shared.clone());
                    file_plans.push((url, format, shared));
                }
                Planned::Push(url) => {
                    let kind = match url.scheme() {
                        PushScheme::Rtmp | PushScheme::Rtmps => OutputKind::Rtmp,
                        PushScheme::Srt => OutputKind::Srt,
                    };
                    let shared =
                        OutputShared::new(url.display().to_owned(), kind, OutputState::Connecting);
                    let (ptx, prx) = bounded(push::QUEUE_PACKETS);
                    all_shared.push(shared.clone());
                    rtmp_plans.push((url, shared, ptx, prx));
                }
            }
        }

        let rtmp_outs: Vec<RtmpOut> = rtmp_plans
            .iter()
            .map(|(_, shared, ptx, _)| RtmpOut {
                tx: ptx.clone(),
                need_key: true,
                shared: shared.clone(),
            })
            .collect();

        let thread_cfg = cfg.clone();
        let thread_counters = counters.clone();
        let thread_stopped = stopped.clone();
        let encoder_thread = std::thread::Builder::new()
            .name("cc-encoder".into())
            .spawn(move || {
                encoder_main(
                    thread_cfg,
                    file_plans,
                    rtmp_outs,
                    rx,
                    free_tx,
                    init_tx,
                    thread_counters,
                    thread_stopped,
                )
            })
            .map_err(|_| MediaError::Spawn("encoder".into()))?;

        let setup = match init_rx.recv() {
            Ok(Ok(setup)) => setup,
            Ok(Err(e)) => {
                let _ = encoder_thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = encoder_thread.join();
                return Err(MediaError::EncoderStopped(
                    "encoder thread exited during start".into(),
                ));
            }
        };

        let mut rtmp_threads = Vec::new();
        let mut rtmp_watches = Vec::new();
        for (url, shared, ptx, prx) in rtmp_plans {
            let watch = IoWatch::new(cfg.rtmp_timeout);
            rtmp_watches.push(watch.clone());
            // The encoder thread holds its own sender; ours must go so a finished encode ends the writer.
            drop(ptx);
            let setup = setup.clone();
            let tls = tls.clone();
            let name = format!("cc-push-{}", rtmp_threads.len());
            let send_buffer =
                push::send_buffer_bytes(cfg.video_bitrate_kbps + cfg.audio_bitrate_kbps);
            match std::thread::Builder::new()
                .name(name)
                .spawn(move || push::run(url, tls, setup, prx, shared, watch, send_buffer))
            {
                Ok(h) => rtmp_threads.push(h),
                Err(_) => {
                    drop(tx);
                    let _ = encoder_thread.join();
                    for w in &rtmp_watches {
                        w.abort();
                    }
                    return Err(MediaError::Spawn("push writer".into()));
                }
            }
        }

        Ok(Self {
            cfg,
            tx: Some(tx),
            free_rx,
            spare: Vec::new(),
            fitter: None,
            images_allocated: 0,
            last_frame_index: None,
            counters,
            outputs: all_shared,
            stopped,
            encoder_thread: Some(encoder_thread),
            rtmp_threads,
            rtmp_watches,
            fps_window: Mutex::new((Instant::now(), 0, 0.0)),
        })
    }

    fn check_running(&self) -> Result<&Sender<Msg>, MediaError> {
        if let Some(reason) = self
            .stopped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            return Err(MediaError::EncoderStopped(reason));
        }
        self.tx
            .as_ref()
            .ok_or_else(|| MediaError::EncoderStopped("finished".into()))
    }

    /// Takes a free I420 image: a returned one, a new one while under the pool size, else none.
    fn take_image(&mut self) -> Result<Option<I420Image>, MediaError> {
        if let Some(img) = self.spare.pop() {
            return Ok(Some(img));
        }
        if let Ok(img) = self.free_rx.try_recv() {
            return Ok(Some(img));
        }
        // The queue, the one being encoded, and the last one kept for repeats.
        if self.images_allocated < self.cfg.video_queue_frames + 2 {
            self.images_allocated += 1;
            return I420Image::new(self.cfg.width, self.cfg.height).map(Some);
        }
        if self.cfg.block_when_full {
            return match self.free_rx.recv() {
                Ok(img) => Ok(Some(img)),
                Err(_) => Err(MediaError::EncoderStopped(self.stop_reason())),
            };
        }
        Ok(None)
    }

    fn stop_reason(&self) -> String {
        self.stopped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_else(|| "encoder thread exited".into())
    }

    /// Converts one RGBA frame to I420 on this thread and queues it; `frame_index` is in 1/fps.
    ///
    /// When the encoder is behind the frame is dropped and counted (or, with
    /// `block_when_full`, this waits for it).
    pub fn push_video(
        &mut self,
        rgba: &[u8],
        stride: usize,
        frame_index: u64,
    ) -> Result<(), MediaError> {
        let (width, height) = (self.cfg.width, self.cfg.height);
        self.push_video_sized(rgba, stride, width, height, frame_index)
    }

    /// Like [`Self::push_video`] for a `width × height` frame of any size: one that differs
    /// from the output (a game that resized) is scaled with its aspect ratio kept and centred
    /// on black, so the stream keeps its size.
    pub fn push_video_sized(
        &mut self,
        rgba: &[u8],
        stride: usize,
        width: u32,
        height: u32,
        frame_index: u64,
    ) -> Result<(), MediaError> {
        self.push_pixels(rgba, PixelOrder::Rgba, stride, (width, height), frame_index)
    }

    /// Encodes the last frame pushed again as output frame `frame_index`: for a tick whose
    /// game frame could not be read (a Wayland client's pool that went bad), so the stream
    /// keeps its rate. Nothing happens before the first frame; a full queue drops it, counted.
    pub fn repeat_video(&mut self, frame_index: u64) -> Result<(), MediaError> {
        if self
            .last_frame_index
            .is_some_and(|last| frame_index <= last)
        {
            return Err(MediaError::InvalidFrame(format!(
                "frame_index {frame_index} is not after the previous one"
            )));
        }
        let pts = i64::try_from(frame_index).map_err(|_| {
            MediaError::InvalidFrame(format!("frame_index {frame_index} too large"))
        })?;
        self.check_running()?;
        self.last_frame_index = Some(frame_index);
        let sent = self.check_running()?.try_send(Msg::Repeat(pts));
        match sent {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.counters.video_dropped.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(TrySendError::Disconnected(_)) => {
                Err(MediaError::EncoderStopped(self.stop_reason()))
            }
        }
    }

    /// Like [`Self::push_video_sized`] for pixels in either byte order: RGBA from crosscast's
    /// slots, BGRA read in place from a Wayland client's `wl_shm` pool.
    pub fn push_pixels(
        &mut self,
        pixels: &[u8],
        order: PixelOrder,
        stride: usize,
        (width, height): (u32, u32),
        frame_index: u64,
    ) -> Result<(), MediaError> {
        let handed_ns = monotonic_ns();
        self.check_running()?;
        if let Some(last) = self.last_frame_index {
            if frame_index <= last {
                return Err(MediaError::InvalidFrame(format!(
                    "frame_index {frame_index} is not after the previous {last}"
                )));
            }
        }
        let pts = i64::try_from(frame_index).map_err(|_| {
            MediaError::InvalidFrame(format!("frame_index {frame_index} too large"))
        })?;
        let Some(mut img) = self.take_image()? else {
            self.counters.video_dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        };
        let output = (self.cfg.width, self.cfg.height);
        let converted = if (width, height) == output {
            self.fitter = None;
            crate::convert::to_i420(pixels, order, stride, output.0, output.1, &mut img)
        } else {
            fit_and_convert(
                &mut self.fitter,
                output,
                (pixels, order),
                stride,
                (width, height),
                &mut img,
            )
        };
        if let Err(e) = converted {
            self.spare.push(img);
            return Err(e);
        }
        self.last_frame_index = Some(frame_index);
        let tx = self.check_running()?;
        let msg = Msg::Video(img, pts, handed_ns);
        if self.cfg.block_when_full {
            tx.send(msg)
                .map_err(|_| MediaError::EncoderStopped(self.stop_reason()))
        } else {
            match tx.try_send(msg) {
                Ok(()) => Ok(()),
                Err(TrySendError::Full(Msg::Video(img, _, _))) => {
                    self.spare.push(img);
                    self.counters.video_dropped.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                Err(TrySendError::Full(_)) => Ok(()),
                Err(TrySendError::Disconnected(_)) => {
                    Err(MediaError::EncoderStopped(self.stop_reason()))
                }
            }
        }
    }

    /// Queues interleaved f32 samples starting at `first_sample` (in 1/sample_rate on the stream timeline).
    pub fn push_audio(
        &mut self,
        interleaved_f32: &[f32],
        first_sample: u64,
    ) -> Result<(), MediaError> {
        let channels = usize::from(self.cfg.channels);
        if interleaved_f32.len() % channels != 0 {
            return Err(MediaError::InvalidAudio(format!(
                "{} samples is not a multiple of {channels} channels",
                interleaved_f32.len()
            )));
        }
        if first_sample > i64::MAX as u64 / 2 {
            return Err(MediaError::InvalidAudio(format!(
                "first_sample {first_sample} too large"
            )));
        }
        if interleaved_f32.is_empty() {
            return Ok(());
        }
        let tx = self.check_running()?;
        let msg = Msg::Audio(interleaved_f32.to_vec(), first_sample);
        if self.cfg.block_when_full {
            tx.send(msg)
                .map_err(|_| MediaError::EncoderStopped(self.stop_reason()))
        } else {
            match tx.try_send(msg) {
                Ok(()) => Ok(()),
                Err(TrySendError::Full(_)) => {
                    self.counters.audio_dropped.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                Err(TrySendError::Disconnected(_)) => {
                    Err(MediaError::EncoderStopped(self.stop_reason()))
                }
            }
        }
    }

    /// The configuration this encoder runs with.
    pub fn config(&self) -> &EncoderConfig {
        &self.cfg
    }

    /// Current figures; cheap, callable from any thread holding `&self`.
    pub fn stats(&self) -> EncoderStats {
        let c = &self.counters;
        let video = c.video_encoded.load(Ordering::Relaxed);
        let encode_fps = {
            let mut w = self
                .fps_window
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let dt = w.0.elapsed().as_secs_f64();
            if dt >= 0.5 {
                w.2 = video.saturating_sub(w.1) as f64 / dt;
                *w = (Instant::now(), video, w.2);
            }
            w.2
        };
        let outputs: Vec<_> = self.outputs.iter().map(|o| o.snapshot()).collect();
        let load = c
            .load
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        EncoderStats {
            video_frames_encoded: video,
            audio_frames_encoded: c.audio_encoded.load(Ordering::Relaxed),
            bytes_written: outputs.iter().map(|o| o.bytes).sum(),
            encode_fps,
            video_frames_dropped: c.video_dropped.load(Ordering::Relaxed),
            audio_blocks_dropped: c.audio_dropped.load(Ordering::Relaxed),
            audio_gap_samples: c.audio_gap.load(Ordering::Relaxed),
            audio_overlap_samples: c.audio_overlap.load(Ordering::Relaxed),
            outputs,
            live_bitrate_kbps: match c.live_kbps.load(Ordering::Relaxed) {
                0 => None,
                k => Some(k),
            },
            video_bitrate_kbps: self.cfg.video_bitrate_kbps,
            second_encode: c.second_encode.load(Ordering::Relaxed) != 0,
            video_codec: load.video_codec,
            preset: load.preset,
            encode_load: load.load,
            overloaded: load.overloaded,
            target_fps: self.cfg.fps.as_f64(),
        }
    }

    /// Takes the notes the encoder has for the log since the last call, oldest first: which
    /// encoder runs and why (`encoder: x264 (vaapi: ...)`), preset steps, and later others.
    /// Bounded: unread notes beyond 64 are dropped, and the next call says how many.
    pub fn take_notes(&self) -> Vec<String> {
        self.counters
            .notes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Flushes the encoders, writes every trailer, joins the threads; errors if a recording failed.
    pub fn finish(mut self) -> Result<EncoderStats, MediaError> {
        self.shutdown();
        let stats = self.stats();
        if let Some(reason) = self
            .stopped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            return Err(MediaError::EncoderStopped(reason));
        }
        for o in &stats.outputs {
            if let OutputState::Failed(reason) = &o.state {
                return Err(MediaError::OutputFailed {
                    output: o.name.clone(),
                    reason: reason.clone(),
                });
            }
        }
        Ok(stats)
    }

    fn shutdown(&mut self) {
        // Dropping the sender is the end-of-stream signal for the encoder thread.
        self.tx = None;
        if let Some(h) = self.encoder_thread.take() {
            let _ = h.join();
        }
        let threads = std::mem::take(&mut self.rtmp_threads);
        let wait_all = |limit: Duration| {
            let deadline = Instant::now() + limit;
            while threads.iter().any(|h| !h.is_finished()) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        wait_all(RTMP_FINISH_WAIT);
        // Writers still busy are stuck on a slow or silent server: cut their I/O short.
        for w in &self.rtmp_watches {
            w.abort();
        }
        wait_all(RTMP_ABORT_WAIT);
        for h in threads {
            // Cannot happen with the abort above, but never hold the caller hostage to a peer.
            if h.is_finished() {
                let _ = h.join();
            }
        }
    }
}

impl Drop for LiveEncoder {
    fn drop(&mut self) {
        // Dropped without `finish` (e.g. on an error path): still close the files properly.
        self.shutdown();
    }
}

fn ff_err(codec: &str) -> impl Fn(ff::Error) -> MediaError + '_ {
    move |e| MediaError::EncoderOpen {
        codec: codec.to_owned(),
        reason: e.to_string(),
    }
}

fn set_nice(nice: i32) -> Result<(), MediaError> {
    // On Linux PRIO_PROCESS with a thread id changes only that thread; threads it creates inherit it.
    let tid = rustix::thread::gettid();
    rustix::process::setpriority_process(Some(tid), nice).map_err(|e| MediaError::Priority {
        nice,
        reason: e.to_string(),
    })
}

/// The frame rate as FFmpeg's signed fraction (a validated rate's terms fit in `i32`).
fn frame_rate_parts(cfg: &EncoderConfig) -> (i32, i32) {
    (
        i32::try_from(cfg.fps.num()).unwrap_or(60),
        i32::try_from(cfg.fps.den()).unwrap_or(1),
    )
}

fn open_audio(cfg: &EncoderConfig) -> Result<ff::encoder::Audio, MediaError> {
    let codec = ff::encoder::find_by_name("aac").ok_or_else(|| MediaError::EncoderOpen {
        codec: "aac".into(),
        reason: "FFmpeg was built without its native AAC encoder".into(),
    })?;
    let mut enc = ff::codec::context::Context::new_with_codec(codec)
        .encoder()
        .audio()
        .map_err(ff_err("aac"))?;
    let rate = i32::try_from(cfg.sample_rate).unwrap_or(48_000);
    enc.set_rate(rate);
    let layout = if cfg.channels == 1 {
        ff::ChannelLayout::MONO
    } else {
        ff::ChannelLayout::STEREO
    };
    enc.set_channel_layout(layout);
    enc.set_channels(i32::from(cfg.channels));
    enc.set_format(ff::format::Sample::F32(ff::format::sample::Type::Planar));
    enc.set_bit_rate(cfg.audio_bitrate_kbps as usize * 1000);
    enc.set_time_base(ff::Rational::new(1, rate));
    enc.set_flags(ff::codec::Flags::GLOBAL_HEADER);
    let enc = enc
        .open_as_with(codec, ff::Dictionary::new())
        .map_err(ff_err("aac"))?;
    if enc.frame_size() as usize != AAC_FRAME {
        return Err(MediaError::EncoderOpen {
            codec: "aac".into(),
            reason: format!("unexpected frame size {}", enc.frame_size()),
        });
    }
    Ok(enc)
}

fn open_file(url: &str, format: FileFormat, setup: &StreamSetup) -> Result<Muxer, String> {
    let mut mux_opts = ff::Dictionary::new();
    // Push every packet to the file at once so a killed process loses as little as possible,
    // and do not hold video back more than a second waiting for audio to interleave with.
    mux_opts.set("flush_packets", "1");
    mux_opts.set("max_interleave_delta", "1000000");
    if format == FileFormat::Mp4 {
        // Fragmented MP4: moov up front, self-contained fragments from each keyframe, so the
        // file plays even if the trailer is never written; cut at least every second so a
        // crash loses at most one second even with long GOPs.
        mux_opts.set("movflags", "frag_keyframe+empty_moov+default_base_moof");
        mux_opts.set("frag_duration", "1000000");
    }
    Muxer::open(
        url,
        format.muxer_name(),
        ff::Dictionary::new(),
        mux_opts,
        setup,
        None,
    )
}

struct Encoding {
    video: VideoEncoder,
    audio: ff::encoder::Audio,
    /// The settings, for reopening x264 at another preset.
    cfg: EncoderConfig,
    /// Load and, with `--preset auto`, the preset ladder's position.
    controller: LoadController,
    period_ns: u64,
    audio_frame: ff::frame::Audio,
    video_tb: ff::Rational,
    audio_tb: ff::Rational,
    channels: usize,
    files: Vec<FileOut>,
    rtmp: Vec<RtmpOut>,
    counters: Arc<Counters>,
    /// `EncoderConfig::frame_times`, open.
    frame_times: Option<std::io::BufWriter<std::fs::File>>,
    /// Frames in the encoder: pts, when each was handed over and when this thread took it,
    /// until its packet comes out (a few at most; bounded in case the encoder holds more).
    handed: std::collections::VecDeque<(i64, u64, u64)>,
    /// Adaptive bitrate, when on and there is a network output.
    abr: Option<Abr>,
}

/// Which encode a packet came out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The main video encode (recordings always take this one).
    Main,
    /// The second video encode that runs for network outputs while their bitrate is lowered.
    Live,
    /// The one audio encode (every output takes it).
    Audio,
}

/// Which video encode the network outputs take, switching only where the stream stays
/// decodable: onto the live encode at its first frame (an IDR), back onto the main one at
/// one of its keyframes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// The main encode.
    Main,
    /// The live encode for frames from this pts on (`None` until it has taken one), main before.
    Live(Option<i64>),
    /// Going back: the live encode until the main encode's next keyframe (its pts once seen),
    /// main from there; the first field is the live encode's start, should the rate drop again.
    Back(Option<i64>, Option<i64>),
}

/// Adaptive bitrate state on the encoder thread (see `abr.rs` for the controller).
struct Abr {
    ctl: BitrateController,
    next_tick: Instant,
    /// Recordings exist and must keep the full bitrate: lower the live rate on a second encode.
    separate: bool,
    /// The second encode, open while the live bitrate is below full.
    live: Option<VideoEncoder>,
    route: Route,
    /// The configuration the main encode was opened with (the live one copies it).
    cfg: EncoderConfig,
}

#[allow(clippy::too_many_arguments)]
fn encoder_main(
    cfg: EncoderConfig,
    file_plans: Vec<(String, FileFormat, Arc<OutputShared>)>,
    rtmp: Vec<RtmpOut>,
    rx: Receiver<Msg>,
    free_tx: Sender<I420Image>,
    init_tx: Sender<Result<StreamSetup, MediaError>>,
    counters: Arc<Counters>,
    stopped: Arc<Mutex<Option<String>>>,
) {
    let mut enc = match init(&cfg, file_plans, rtmp, counters) {
        Ok((enc, setup)) => {
            let _ = init_tx.send(Ok(setup));
            enc
        }
        Err(e) => {
            let _ = init_tx.send(Err(e));
            return;
        }
    };
    drop(init_tx);
    let mut framer = AudioFramer::new(enc.channels, AAC_FRAME, cfg.sample_rate);
    let mut result = Ok(());
    let mut last: Option<I420Image> = None;
    // The thread's busy time since the last video frame (audio work included).
    let mut busy_ns = 0u64;
    while let Ok(msg) = rx.recv() {
        let t0 = Instant::now();
        let video =
            matches!(msg, Msg::Video(..)) || (matches!(msg, Msg::Repeat(_)) && last.is_some());
        result = match msg {
            Msg::Video(img, pts, handed_ns) => {
                if enc.frame_times.is_some() {
                    if enc.handed.len() >= 64 {
                        enc.handed.pop_front();
                    }
                    enc.handed.push_back((pts, handed_ns, monotonic_ns()));
                }
                let r = enc.encode_video(&img, pts);
                // Kept for repeats; the one it replaces goes back to the pool.
                if let Some(old) = last.replace(img) {
                    let _ = free_tx.send(old);
                }
                r
            }
            Msg::Repeat(pts) => match &last {
                Some(img) => enc.encode_video(img, pts),
                None => Ok(()),
            },
            Msg::Audio(samples, first) => enc.encode_audio_block(&mut framer, &samples, first),
        };
        busy_ns =
            busy_ns.saturating_add(u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX));
        if result.is_ok() && video {
            result = enc.after_frame(std::mem::take(&mut busy_ns));
        }
        if result.is_err() {
            break;
        }
        enc.abr_tick();
    }
    if result.is_ok() {
        result = enc.flush(&mut framer);
    }
    if let Err(e) = result {
        *stopped.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
    }
    enc.close();
}

fn init(
    cfg: &EncoderConfig,
    file_plans: Vec<(String, FileFormat, Arc<OutputShared>)>,
    rtmp: Vec<RtmpOut>,
    counters: Arc<Counters>,
) -> Result<(Encoding, StreamSetup), MediaError> {
    if let Some(nice) = cfg.encoder_nice {
        // Before the encoders open, so x264's worker threads inherit it.
        set_nice(nice)?;
    }
    let video = VideoEncoder::open(cfg)?;
    let audio = open_audio(cfg)?;
    {
        counters
            .notes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(video.selection().to_owned());
        let mut load = counters.load.lock().unwrap_or_else(PoisonError::into_inner);
        load.video_codec = video.codec_name().to_owned();
        load.preset = video.preset().map(str::to_owned);
    }
    let controller = match video.preset() {
        Some(p) if video.adaptive() => LoadController::new(
            LoadPolicy::default(),
            AUTO_LADDER.len(),
            AUTO_LADDER.iter().position(|r| *r == p).unwrap_or(0),
            true,
        ),
        _ => LoadController::new(LoadPolicy::default(), 1, 0, false),
    };
    let (num, den) = frame_rate_parts(cfg);
    let video_tb = ff::Rational::new(den, num);
    let audio_tb = ff::Rational::new(1, i32::try_from(cfg.sample_rate).unwrap_or(48_000));
    let setup = StreamSetup {
        video: video.parameters(),
        audio: ff::codec::Parameters::from(&*audio),
        video_tb,
        audio_tb,
        frame_rate: ff::Rational::new(num, den),
    };
    let mut files = Vec::new();
    for (url, format, shared) in file_plans {
        let muxer = open_file(&url, format, &setup).map_err(|reason| MediaError::OpenOutput {
            output: shared.name().to_owned(),
            reason,
        })?;
        files.push(FileOut {
            muxer: Some(muxer),
            shared,
        });
    }
    let layout = if cfg.channels == 1 {
        ff::ChannelLayout::MONO
    } else {
        ff::ChannelLayout::STEREO
    };
    let mut audio_frame = ff::frame::Audio::new(
        ff::format::Sample::F32(ff::format::sample::Type::Planar),
        AAC_FRAME,
        layout,
    );
    audio_frame.set_rate(cfg.sample_rate);
    let abr = match cfg.adaptive_min_kbps {
        Some(min) if !rtmp.is_empty() => {
            counters
                .live_kbps
                .store(cfg.video_bitrate_kbps, Ordering::Relaxed);
            Some(Abr {
                ctl: BitrateController::new(
                    min,
                    cfg.video_bitrate_kbps,
                    cfg.audio_bitrate_kbps,
                    rtmp.len(),
                ),
                next_tick: Instant::now(),
                separate: !files.is_empty() && !cfg.shared_encode,
                live: None,
                route: Route::Main,
                cfg: cfg.clone(),
            })
        }
        _ => None,
    };
    Ok((
        Encoding {
            video,
            audio,
            cfg: cfg.clone(),
            controller,
            period_ns: cfg.fps.period_ns(),
            audio_frame,
            video_tb,
            audio_tb,
            channels: usize::from(cfg.channels),
            files,
            rtmp,
            counters,
            frame_times: match &cfg.frame_times {
                Some(path) => Some(std::io::BufWriter::new(
                    std::fs::File::create(path).map_err(|e| MediaError::FrameTimes {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?,
                )),
                None => None,
            },
            handed: std::collections::VecDeque::new(),
            abr,
        },
        setup,
    ))
}

impl Encoding {
    fn encode_video(&mut self, img: &I420Image, pts: i64) -> Result<(), String> {
        if let Some(abr) = self.abr.as_mut() {
            if abr.live.is_some() && abr.route == Route::Live(None) {
                // This frame is the live encode's first (an IDR): the network outputs take it
                // from there, and the main encode's copy of it no more.
                abr.route = Route::Live(Some(pts));
            }
        }
        self.video.send_frame(img, pts).map_err(|e| e.to_string())?;
        self.counters.video_encoded.fetch_add(1, Ordering::Relaxed);
        self.drain(Source::Main)?;
        let Some(abr) = self.abr.as_mut() else {
            return Ok(());
        };
        if let Route::Back(_, Some(_)) = abr.route {
            // The main encode's keyframe took the network outputs back: the live one is done.
            abr.live = None;
            abr.route = Route::Main;
            self.counters.second_encode.store(0, Ordering::Relaxed);
            return Ok(());
        }
        let Some(live) = abr.live.as_mut() else {
            return Ok(());
        };
        live.send_frame(img, pts)
            .map_err(|e| format!("live encode: {e}"))?;
        self.drain(Source::Live)
    }

    /// Feeds the bitrate controller every `abr::TICK_NS` and applies what it decides.
    fn abr_tick(&mut self) {
        let Some(abr) = self.abr.as_mut() else {
            return;
        };
        let now = Instant::now();
        if now < abr.next_tick {
            return;
        }
        abr.next_tick = now + Duration::from_nanos(crate::abr::TICK_NS);
        let views: Vec<LinkView> = self
            .rtmp
            .iter()
            .map(|r| LinkView {
                live: r.shared.state() == OutputState::Live,
                connections: r.shared.connections.load(Ordering::Relaxed),
                backlog_us: r.shared.backlog_us(),
                sent_bytes: r.shared.bytes.load(Ordering::Relaxed),
                queued_bytes: r.shared.queued_bytes(),
            })
            .collect();
        let Some(change) = abr.ctl.tick(monotonic_ns(), &views) else {
            return;
        };
        let full = abr.cfg.video_bitrate_kbps;
        let to = change.to_kbps;
        let mut how = "";
        let applied = if !abr.separate {
            self.video.set_bitrate_kbps(to)
        } else if let Some(live) = abr.live.as_mut() {
            abr.route = match (abr.route, to < full) {
                // Full rate again: the network outputs go back to the main encode at its next
                // keyframe; the live one keeps them fed (at full rate) until then.
                (Route::Live(since), false) => Route::Back(since, None),
                (Route::Back(since, None), true) => Route::Live(since),
                (route, _) => route,
            };
            live.set_bitrate_kbps(to)
        } else if to < full {
            match self.video.sibling(&abr.cfg, to) {
                Ok(live) if live.extradata() == self.video.extradata() => {
                    abr.live = Some(live);
                    abr.route = Route::Live(None);
                    self.counters.second_encode.store(1, Ordering::Relaxed);
                    how = " on a second encode (recordings keep the full bitrate)";
                    Ok(())
                }
                other => {
                    // Recordings follow the live rate from now on: say why.
                    abr.separate = false;
                    how = match other {
                        Ok(_) => " (a second encode would not match the stream's headers: recordings follow the live bitrate from now on)",
                        Err(_) => " (no second encode here: recordings follow the live bitrate from now on)",
                    };
                    self.video.set_bitrate_kbps(to)
                }
            }
        } else {
            Ok(())
        };
        if let Err(e) = applied {
            // A hardware encoder that cannot change its rate while running.
            self.abr = None;
            self.counters.live_kbps.store(0, Ordering::Relaxed);
            self.note(format!(
                "encoder: adaptive bitrate off: {e}; push outputs keep {full} kb/s"
            ));
            return;
        }
        self.counters.live_kbps.store(to, Ordering::Relaxed);
        self.note(format!(
            "encoder: bitrate {} -> {} kb/s{how}: {}",
            change.from_kbps, to, change.reason
        ));
    }

    fn note(&self, text: String) {
        self.counters
            .notes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(text);
    }

    /// After each video frame: feeds the load controller, publishes the load, takes a step.
    fn after_frame(&mut self, busy_ns: u64) -> Result<(), String> {
        let dropped = self.counters.video_dropped.load(Ordering::Relaxed);
        let step = self
            .controller
            .record(monotonic_ns(), busy_ns, self.period_ns, dropped);
        {
            let mut load = self
                .counters
                .load
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            load.load = self.controller.load();
            load.overloaded = self.controller.overloaded();
        }
        match step {
            Some(step) => self.switch_preset(&step),
            None => Ok(()),
        }
    }

    /// Reopens x264 at the step's preset, from the next frame on (an IDR), if its headers are
    /// the old ones: recordings and live outputs share this encode and keep their SPS/PPS.
    fn switch_preset(&mut self, step: &Step) -> Result<(), String> {
        let from = self.video.preset().unwrap_or("?").to_owned();
        let to = AUTO_LADDER[step.to];
        let new = match self.video.with_preset(&self.cfg, to) {
            Ok(new) => new,
            Err(e) => {
                self.controller.refused();
                self.note(format!(
                    "encoder: cannot reopen x264 at {to} ({e}); staying at {from} for the rest of the run"
                ));
                return Ok(());
            }
        };
        if new.extradata() != self.video.extradata() {
            self.controller.refused();
            self.note(format!(
                "encoder: x264 at {to} writes other stream headers (SPS/PPS) than {from}, which would break decoders mid-stream; staying at {from} for the rest of the run"
            ));
            return Ok(());
        }
        // The old encoder's last packets go out before the new one's first.
        self.video.send_eof().map_err(|e| e.to_string())?;
        self.drain(Source::Main)?;
        self.video = new;
        // A live encode (adaptive bitrate) steps with it, keeping its own bitrate; its new
        // first frame is an IDR, which the network outputs take like any other of its frames.
        let new_live = self
            .abr
            .as_ref()
            .and_then(|a| a.live.as_ref().map(|l| l.with_preset(&a.cfg, to)));
        if let Some(new_live) = new_live {
            match new_live {
                Ok(n) if n.extradata() == self.video.extradata() => {
                    if let Some(live) = self.abr.as_mut().and_then(|a| a.live.as_mut()) {
                        live.send_eof().map_err(|e| e.to_string())?;
                    }
                    self.drain(Source::Live)?;
                    if let Some(a) = self.abr.as_mut() {
                        a.live = Some(n);
                    }
                }
                _ => self.note(format!(
                    "encoder: the live encode stays at its preset (cannot reopen it at {to})"
                )),
            }
        }
        self.controller.switched(monotonic_ns(), step.to);
        self.counters
            .load
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .preset = Some(to.to_owned());
        let load = step.load * 100.0;
        self.note(if step.overloaded {
            let drops = match step.dropped {
                0 => String::new(),
                1 => ", 1 frame dropped".to_owned(),
                n => format!(", {n} frames dropped"),
            };
            format!("encoder: overloaded at {from} (load {load:.0} %{drops}): now {to}")
        } else {
            format!("encoder: headroom at {from} (load {load:.0} %): now {to}")
        });
        Ok(())
    }

    fn encode_audio_block(
        &mut self,
        framer: &mut AudioFramer,
        samples: &[f32],
        first: u64,
    ) -> Result<(), String> {
        let mut result = Ok(());
        let report = framer.push(samples, first, &mut |pts, frame| {
            if result.is_ok() {
                result = self.encode_audio_frame(pts, frame);
            }
        });
        self.counters
            .audio_gap
            .fetch_add(report.gap, Ordering::Relaxed);
        self.counters
            .audio_overlap
            .fetch_add(report.overlap, Ordering::Relaxed);
        result
    }

    fn encode_audio_frame(&mut self, pts: u64, interleaved: &[f32]) -> Result<(), String> {
        let ch = self.channels;
        for c in 0..ch {
            let plane = self.audio_frame.plane_mut::<f32>(c);
            for (d, s) in plane.iter_mut().zip(interleaved.iter().skip(c).step_by(ch)) {
                // NaN or infinities from a buggy game must not poison the AAC encoder's state.
                *d = if s.is_finite() {
                    s.clamp(-1.0, 1.0)
                } else {
                    0.0
                };
            }
        }
        self.audio_frame.set_pts(Some(pts as i64));
        self.audio
            .send_frame(&self.audio_frame)
            .map_err(|e| format!("AAC encode failed: {e}"))?;
        self.counters.audio_encoded.fetch_add(1, Ordering::Relaxed);
        self.drain(Source::Audio)
    }

    fn drain(&mut self, from: Source) -> Result<(), String> {
        let mut pkt = ff::Packet::empty();
        loop {
            let r = match from {
                Source::Main => match self.video.receive_packet(&mut pkt) {
                    Ok(true) => Ok(()),
                    Ok(false) => return Ok(()),
                    Err(e) => return Err(e.to_string()),
                },
                Source::Live => match self.abr.as_mut().and_then(|a| a.live.as_mut()) {
                    Some(live) => match live.receive_packet(&mut pkt) {
                        Ok(true) => Ok(()),
                        Ok(false) => return Ok(()),
                        Err(e) => return Err(e.to_string()),
                    },
                    None => return Ok(()),
                },
                Source::Audio => self.audio.receive_packet(&mut pkt),
            };
            match r {
                Ok(()) => {
                    let (kind, tb) = match from {
                        Source::Main | Source::Live => (Kind::Video, self.video_tb),
                        Source::Audio => (Kind::Audio, self.audio_tb),
                    };
                    if let (Source::Main, Some(w)) = (from, self.frame_times.as_mut()) {
                        let pts = pkt.pts().unwrap_or(-1);
                        // Repeats were never handed over: 0 for those columns.
                        while self.handed.front().is_some_and(|&(p, _, _)| p < pts) {
                            self.handed.pop_front();
                        }
                        let (handed, taken) = match self.handed.front() {
                            Some(&(p, h, t)) if p == pts => (h, t),
                            _ => (0, 0),
                        };
                        // A diagnostic: a failed write must not stop the stream.
                        let _ = writeln!(w, "{pts} {} {handed} {taken}", monotonic_ns());
                    }
                    self.distribute(EncodedPacket::new(kind, &pkt, tb), from);
                }
                Err(ff::Error::Other { errno }) if errno == ff::error::EAGAIN => return Ok(()),
                Err(ff::Error::Eof) => return Ok(()),
                Err(e) => return Err(format!("encoder output failed: {e}")),
            }
        }
    }

    /// Whether the network outputs take this packet (see [`Route`]).
    fn network_takes(&mut self, p: &EncodedPacket, from: Source) -> bool {
        let Some(abr) = self.abr.as_mut() else {
            return from != Source::Live;
        };
        let pts = p.pts.unwrap_or(i64::MIN);
        match (abr.route, from) {
            (_, Source::Audio) | (Route::Main, Source::Main) => true,
            (Route::Main, Source::Live) => false,
            (Route::Live(since), Source::Main) => since.is_none_or(|s| pts < s),
            (Route::Live(since), Source::Live) => since.is_some_and(|s| pts >= s),
            (Route::Back(live_since, None), Source::Main) => {
                if p.key {
                    abr.route = Route::Back(live_since, Some(pts));
                    true
                } else {
                    false
                }
            }
            (Route::Back(_, None), Source::Live) => true,
            (Route::Back(_, Some(k)), Source::Main) => pts >= k,
            (Route::Back(_, Some(k)), Source::Live) => pts < k,
        }
    }

    fn distribute(&mut self, p: Arc<EncodedPacket>, from: Source) {
        // The AAC encoder labels its output with the input pts minus its delay (1024 samples),
        // so the first packet (encoder priming) lands before zero. Muxers would "fix" that by
        // shifting every stream (FLV) or by moving the first video frame (fragmented MP4), and
        // FLV has no edit list to tell players to skip it. Dropping the priming packet keeps
        // both streams starting at zero with decoded audio sample n at n / sample_rate.
        if p.kind == Kind::Audio && p.pts.is_some_and(|t| t < 0) {
            return;
        }
        if from != Source::Live {
            self.write_files(&p);
        }
        if !self.network_takes(&p, from) {
            return;
        }
        for r in &mut self.rtmp {
            if r.need_key {
                if p.kind == Kind::Video && p.key {
                    r.need_key = false;
                } else {
                    r.shared.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            match r.tx.try_send(p.clone()) {
                Ok(()) => r.shared.entered_queue(&p),
                Err(TrySendError::Full(_)) => {
                    // A hole in the stream: skip to the next keyframe so the ingest can decode again.
                    r.shared.dropped.fetch_add(1, Ordering::Relaxed);
                    r.need_key = true;
                }
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }

    fn write_files(&mut self, p: &EncodedPacket) {
        for f in &mut self.files {
            if let Some(m) = f.muxer.as_mut() {
                match m.write(p, 0) {
                    Ok(n) => {
                        f.shared.bytes.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) => {
                        // Stop this file (it stays playable up to here); the others continue.
                        f.muxer = None;
                        f.shared
                            .set_state(OutputState::Failed(format!("write failed: {e}")));
                    }
                }
            }
        }
    }

    fn flush(&mut self, framer: &mut AudioFramer) -> Result<(), String> {
        let mut result = Ok(());
        framer.flush(&mut |pts, frame| {
            if result.is_ok() {
                result = self.encode_audio_frame(pts, frame);
            }
        });
        result?;
        self.video.send_eof().map_err(|e| e.to_string())?;
        self.drain(Source::Main)?;
        if let Some(live) = self.abr.as_mut().and_then(|a| a.live.as_mut()) {
            live.send_eof().map_err(|e| e.to_string())?;
            self.drain(Source::Live)?;
        }
        self.audio
            .send_eof()
            .map_err(|e| format!("AAC flush failed: {e}"))?;
        self.drain(Source::Audio)
    }

    fn close(mut self) {
        if let Some(w) = self.frame_times.as_mut() {
            let _ = w.flush();
        }
        for f in self.files {
            if let Some(m) = f.muxer {
                match m.finish() {
                    Ok(()) => f.shared.set_state(OutputState::Finished),
                    Err(e) => f
                        .shared
                        .set_state(OutputState::Failed(format!("trailer failed: {e}"))),
                }
            }
        }
        // Dropping the RTMP senders tells each writer to send its tail and close.
        drop(self.rtmp);
    }
}

/// Scales a frame of another size than the output into it (see `fit.rs`) and converts it,
/// keeping the scaler while the source size lasts.
pub(crate) fn fit_and_convert(
    fitter: &mut Option<crate::fit::Fitter>,
    output: (u32, u32),
    (rgba, order): (&[u8], PixelOrder),
    stride: usize,
    source: (u32, u32),
    img: &mut I420Image,
) -> Result<(), MediaError> {
    // Any size can be scaled: a Wayland client may commit an odd-sized buffer (GStreamer's
    // waylandsink draws a 1x1 one), which must not stop the stream.
    crate::convert::check_scalable_source(rgba, stride, source.0, source.1)?;
    let current = match fitter.take() {
        Some(f) if f.source() == source => f,
        _ => crate::fit::Fitter::new(source, output)?,
    };
    let canvas = fitter.insert(current).fit(rgba, stride)?;
    // Scaling works on four bytes a pixel whatever their order, so the canvas keeps the
    // source's order.
    crate::convert::to_i420(
        canvas,
        order,
        output.0 as usize * 4,
        output.0,
        output.1,
        img,
    )
}
