//! One playback stream: client PCM in, 48 kHz stereo f32 out, with the byte counters that
//! drive the client's flow control (`Request`) and its latency queries.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    calculate_cutoff, Async, FixedAsync, Indexing, Resampler, SincInterpolationParameters,
    SincInterpolationType, WindowFunction,
};
use std::collections::VecDeque;

/// The one rate the mix runs at.
pub(crate) const OUT_RATE: u32 = 48_000;

/// Client sample formats we convert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    U8,
    S16Le,
    S32Le,
    F32Le,
}

impl Format {
    /// Bytes per sample.
    pub(crate) fn bytes(self) -> usize {
        match self {
            Format::U8 => 1,
            Format::S16Le => 2,
            Format::S32Le | Format::F32Le => 4,
        }
    }

    /// Decodes one sample (exactly `self.bytes()` long) to [-1, 1].
    fn decode(self, b: &[u8]) -> f32 {
        match self {
            Format::U8 => (f32::from(b[0]) - 128.0) / 128.0,
            Format::S16Le => f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0,
            Format::S32Le => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0,
            // Clamp: a hostile client's NaN/inf must not poison the whole mix.
            Format::F32Le => {
                let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                if v.is_finite() {
                    v.clamp(-1.0, 1.0)
                } else {
                    0.0
                }
            }
        }
    }
}

/// Decodes, up-mixes and resamples client bytes to 48 kHz stereo.
///
/// Band-limited sinc resampling (rubato) in fixed input chunks of about 5 ms; 48 kHz input
/// passes straight through.
pub(crate) struct Converter {
    format: Format,
    channels: usize,
    rate: u32,
    /// Bytes of an incomplete frame carried to the next write.
    leftover: Vec<u8>,
    /// Decoded stereo input (interleaved) waiting for a full resampler chunk.
    pending: Vec<f32>,
    resampler: Option<Async<f32>>,
    /// Resampler output scratch (interleaved stereo).
    scratch: Vec<f32>,
    /// Startup-delay frames still to drop from the resampler's output.
    skip: usize,
    /// Input frames since the last reset; with `out_total`, sizes the tail on drain.
    in_total: u64,
    /// Output frames emitted since the last reset.
    out_total: u64,
}

impl std::fmt::Debug for Converter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Converter")
            .field("format", &self.format)
            .field("channels", &self.channels)
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

/// Sinc taps: a 128-point kernel keeps aliasing well below audibility at modest cost.
const SINC_LEN: usize = 128;

fn make_resampler(rate: u32) -> Option<Async<f32>> {
    if rate == OUT_RATE {
        return None;
    }
    let window = WindowFunction::BlackmanHarris2;
    let params = SincInterpolationParameters {
        sinc_len: SINC_LEN,
        f_cutoff: Some(calculate_cutoff(SINC_LEN, window)),
        oversampling_factor: 128,
        interpolation: SincInterpolationType::Linear,
        window,
    };
    let chunk = (rate as usize / 200).max(64);
    let ratio = f64::from(OUT_RATE) / f64::from(rate);
    match Async::<f32>::new_sinc(ratio, 1.0, &params, chunk, 2, FixedAsync::Input) {
        Ok(r) => Some(r),
        Err(e) => {
            // Rates are validated to 8-192 kHz before we get here, so this is a bug.
            log::error!("pulse: no resampler for {rate} Hz: {e}");
            None
        }
    }
}

impl Converter {
    /// A converter for `channels` (1 or 2) of `format` at `rate` Hz.
    pub(crate) fn new(format: Format, channels: usize, rate: u32) -> Self {
        let resampler = make_resampler(rate);
        let skip = resampler.as_ref().map_or(0, |r| r.output_delay());
        let scratch = vec![0.0; 2 * resampler.as_ref().map_or(0, |r| r.output_frames_max())];
        Self {
            format,
            channels,
            rate,
            leftover: Vec::new(),
            pending: Vec::new(),
            resampler,
            scratch,
            skip,
            in_total: 0,
            out_total: 0,
        }
    }

    /// Bytes per client frame.
    pub(crate) fn frame_bytes(&self) -> usize {
        self.format.bytes() * self.channels
    }

    /// Converts `data` and appends the 48 kHz frames it completes to `out`.
    pub(crate) fn push(&mut self, data: &[u8], out: &mut VecDeque<[f32; 2]>) {
        let fb = self.frame_bytes();
        let sb = self.format.bytes();
        let mut data = data;
        if !self.leftover.is_empty() {
            let need = fb - self.leftover.len();
            let n = need.min(data.len());
            self.leftover.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.leftover.len() < fb {
                return;
            }
            let frame = std::mem::take(&mut self.leftover);
            let f = self.decode_frame(&frame, sb);
            self.pending.extend_from_slice(&f);
            self.in_total += 1;
        }
        let mut chunks = data.chunks_exact(fb);
        for f in &mut chunks {
            let fr = self.decode_frame(f, sb);
            self.pending.extend_from_slice(&fr);
            self.in_total += 1;
        }
        self.leftover.extend_from_slice(chunks.remainder());
        self.resample(out, false);
    }

    fn decode_frame(&self, f: &[u8], sb: usize) -> [f32; 2] {
        let l = self.format.decode(&f[..sb]);
        if self.channels == 1 {
            [l, l]
        } else {
            [l, self.format.decode(&f[sb..2 * sb])]
        }
    }

    /// Runs every full chunk of `pending` through the resampler; with `last`, also the
    /// partial rest and then silence until the output matches the input's duration.
    fn resample(&mut self, out: &mut VecDeque<[f32; 2]>, last: bool) {
        let Some(r) = self.resampler.as_mut() else {
            out.extend(self.pending.chunks_exact(2).map(|f| [f[0], f[1]]));
            self.out_total += self.pending.len() as u64 / 2;
            self.pending.clear();
            return;
        };
        let target = (self.in_total * u64::from(OUT_RATE)).div_ceil(u64::from(self.rate));
        let mut used = 0;
        // A chunk of silence yields at least a few frames, so a handful of rounds suffices;
        // the bound only guards against a resampler that stops producing.
        let mut rounds = 0;
        loop {
            let need = r.input_frames_next();
            let avail = (self.pending.len() - used) / 2;
            let frames_in = if avail >= need {
                need
            } else if last && self.out_total < target && rounds < 64 {
                rounds += 1;
                avail
            } else {
                break;
            };
            let partial = (frames_in < need).then_some(frames_in);
            let idx = Indexing {
                input_offset: 0,
                output_offset: 0,
                partial_len: partial,
                active_channels_mask: None,
            };
            let mut chunk = self.pending[used..used + 2 * frames_in].to_vec();
            chunk.resize(2 * need, 0.0);
            let out_frames = self.scratch.len() / 2;
            let (Ok(inp), Ok(mut outp)) = (
                InterleavedSlice::new(&chunk[..], 2, need),
                InterleavedSlice::new_mut(&mut self.scratch[..], 2, out_frames),
            ) else {
                break;
            };
            let produced = match r.process_into_buffer(&inp, &mut outp, Some(&idx)) {
                Ok((_, produced)) => produced,
                Err(e) => {
                    log::error!("pulse: resampler failed: {e}");
                    break;
                }
            };
            used += 2 * frames_in;
            let dropped = self.skip.min(produced);
            self.skip -= dropped;
            let mut frames: Vec<[f32; 2]> = self.scratch[2 * dropped..2 * produced]
                .chunks_exact(2)
                .map(|f| [f[0], f[1]])
                .collect();
            if last {
                // Past the real input only the delayed tail is audio; the rest is padding.
                let room = target.saturating_sub(self.out_total) as usize;
                frames.truncate(room);
            }
            self.out_total += frames.len() as u64;
            out.extend(frames);
        }
        self.pending.drain(..used.min(self.pending.len()));
    }

    /// 48 kHz frames the input so far stands for but the resampler has not emitted yet
    /// (its partial chunk and delay line): how far behind the buffer's end the next
    /// input frame will land.
    pub(crate) fn owed_frames(&self) -> u64 {
        (self.in_total * u64::from(OUT_RATE) / u64::from(self.rate)).saturating_sub(self.out_total)
    }

    /// Emits what the resampler still holds (partial chunk and delay line); used on drain
    /// so the very end of a sound is played. Later input starts a fresh resampler.
    pub(crate) fn finish(&mut self, out: &mut VecDeque<[f32; 2]>) {
        self.resample(out, true);
        self.reset();
    }

    /// Forgets all partial state (flush).
    pub(crate) fn reset(&mut self) {
        self.leftover.clear();
        self.pending.clear();
        if let Some(r) = self.resampler.as_mut() {
            r.reset();
        }
        self.skip = self.resampler.as_ref().map_or(0, |r| r.output_delay());
        self.in_total = 0;
        self.out_total = 0;
    }
}

/// Buffer attributes in client bytes, with the client's -1s already filled in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Attr {
    pub(crate) max_length: u32,
    pub(crate) target_length: u32,
    pub(crate) prebuf: u32,
    pub(crate) min_request: u32,
}

/// What a stream has to tell its client after a write or a mix.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// First start of playback.
    Started,
    /// The client may write this many more bytes.
    Request(u32),
    /// This many bytes did not fit and were dropped.
    Overflow(u32),
    /// The buffer ran dry at this read offset.
    Underflow(i64),
    /// The pending drain (with this sequence number) finished.
    Drained(u32),
}

/// Write-delay samples for the host's benchmark, bounded.
#[derive(Debug, Default)]
pub(crate) struct Delays {
    /// Delays in ns, oldest first.
    pub(crate) samples: Vec<u64>,
    /// Samples (or write stamps) lost to the bounds.
    pub(crate) dropped: u64,
}

/// Delay samples kept until the host takes them.
const MAX_DELAYS: usize = 65_536;
/// Write stamps kept per stream until their first frame is mixed; a client writing tiny
/// frames faster than the mix plays them only loses measurements, not memory.
const MAX_STAMPS: usize = 4_096;

impl Delays {
    fn push(&mut self, ns: u64) {
        if self.samples.len() >= MAX_DELAYS {
            self.dropped += 1;
        } else {
            self.samples.push(ns);
        }
    }
}

/// 48 kHz frames a buffer may briefly hold beyond its cap: resampler rounding and one
/// chunk of output (a chunk is ~5 ms, 240 frames at 48 kHz).
pub(crate) const CAP_SLACK: usize = 1_024;
/// Client frames converted at a time, which bounds the converter's scratch memory.
const CONVERT_FRAMES: usize = 4_096;

/// A client write waiting for its first frame to be mixed.
#[derive(Clone, Copy, Debug)]
struct Stamp {
    /// Index of the write's first frame in the stream's 48 kHz output (counted like
    /// `mixed_total`).
    pos: u64,
    /// Monotonic ns at which the write arrived.
    arrival: u64,
}

/// One playback stream's buffer and flow-control state.
#[derive(Debug)]
pub(crate) struct Playback {
    conv: Converter,
    buf: VecDeque<[f32; 2]>,
    /// Bound on `buf`, derived from `max_length`.
    cap_frames: usize,
    pub(crate) attr: Attr,
    pub(crate) corked: bool,
    /// Linear gain per channel (left, right), from the client's stream volume.
    pub(crate) gain: [f32; 2],
    /// Muted by the client: plays silence but keeps draining, as a real server does.
    pub(crate) muted: bool,
    /// False while prebuffering.
    playing: bool,
    started: bool,
    underrun_sent: bool,
    /// Bytes received from the client (PulseAudio's write index).
    pub(crate) write_index: u64,
    /// Read index at the last flush, in client bytes.
    read_base: u64,
    /// 48 kHz frames consumed since the last flush.
    consumed_out: u64,
    /// Bytes requested from the client and not yet received.
    requested: u64,
    drain: Option<u32>,
    /// 48 kHz frames mixed over the stream's life (never reset): the clock of `stamps`.
    mixed_total: u64,
    /// Writes whose first frame has not been mixed yet, in output order.
    stamps: VecDeque<Stamp>,
    /// Stamps refused because `stamps` was full; moved to [`Delays::dropped`] by `mix_into`.
    stamps_dropped: u64,
    /// Frames played since playback last (re)started after running dry.
    playing_out: u64,
    /// Frames of silence since the buffer last ran dry while running.
    underrun_out: u64,
}

impl Playback {
    /// A new stream; `attr` must already be validated.
    pub(crate) fn new(conv: Converter, attr: Attr, corked: bool) -> Self {
        let fb = conv.frame_bytes() as u64;
        let in_frames = u64::from(attr.max_length) / fb;
        let cap = in_frames * u64::from(OUT_RATE) / u64::from(conv.rate) + 2;
        Self {
            conv,
            // Allocated once: `write` never lets the buffer grow past the cap by more than
            // the slack, so it never reallocates (a doubling would waste up to 2x).
            buf: VecDeque::with_capacity(cap as usize + CAP_SLACK),
            cap_frames: cap as usize,
            attr,
            corked,
            gain: [1.0; 2],
            muted: false,
            playing: false,
            started: false,
            underrun_sent: false,
            write_index: 0,
            read_base: 0,
            consumed_out: 0,
            requested: u64::from(attr.target_length),
            drain: None,
            mixed_total: 0,
            stamps: VecDeque::new(),
            stamps_dropped: 0,
            playing_out: 0,
            underrun_out: 0,
        }
    }

    /// 48 kHz frames buffered now.
    pub(crate) fn buffered_frames(&self) -> usize {
        self.buf.len()
    }

    /// Bound on [`Self::buffered_frames`] after a write (plus [`CAP_SLACK`] inside one).
    pub(crate) fn cap_frames(&self) -> usize {
        self.cap_frames
    }

    /// Bytes held by the stream's buffer allocation (tests of the memory bound).
    #[cfg(test)]
    pub(crate) fn buffer_bytes(&self) -> usize {
        self.buf.capacity() * std::mem::size_of::<[f32; 2]>()
    }

    /// Bytes the client has to be asked for when the stream is created.
    pub(crate) fn initial_request(&self) -> u32 {
        self.attr.target_length
    }

    /// Bytes consumed by the mix (PulseAudio's read index).
    pub(crate) fn read_index(&self) -> u64 {
        let fb = self.conv.frame_bytes() as u64;
        let in_frames = self.consumed_out * u64::from(self.conv.rate) / u64::from(OUT_RATE);
        (self.read_base + in_frames * fb).min(self.write_index)
    }

    /// Whether the mix takes audio from this stream now.
    pub(crate) fn is_running(&self) -> bool {
        self.playing && !self.corked
    }

    /// 48 kHz frames as client bytes (rounded down to whole client frames).
    fn out_to_bytes(&self, frames: u64) -> u64 {
        frames * u64::from(self.conv.rate) / u64::from(OUT_RATE) * self.conv.frame_bytes() as u64
    }

    /// Client bytes the mix has played since playback last started (PulseAudio's `playing_for`).
    pub(crate) fn playing_for(&self) -> u64 {
        self.out_to_bytes(self.playing_out)
    }

    /// Client bytes of silence since the buffer ran dry (PulseAudio's `underrun_for`).
    pub(crate) fn underrun_for(&self) -> u64 {
        self.out_to_bytes(self.underrun_out)
    }

    /// Takes client audio that arrived at monotonic time `now` (ns); returns what to tell
    /// the client.
    /// A client write at a seek position (`pa_stream_write`'s offset and mode).
    ///
    /// Audio already buffered is converted and cannot be rewritten: a write that seeks
    /// back keeps only its part past the write index, and one that seeks forward leaves
    /// silence in between (bounded by the buffer's size), as a real server would play.
    pub(crate) fn write_at(
        &mut self,
        seek: crate::frame::Seek,
        data: &[u8],
        now: u64,
        events: &mut Vec<Event>,
    ) {
        use crate::frame::Seek;
        let write = self.write_index as i64;
        let target = match seek {
            Seek::Relative(o) => write.saturating_add(o),
            Seek::Absolute(o) => o,
            Seek::OnRead(o) => (self.read_index() as i64).saturating_add(o),
        };
        let fb = self.conv.frame_bytes() as u64;
        let delta = target.saturating_sub(write);
        if delta > 0 {
            let gap = (delta as u64).min(u64::from(self.attr.max_length)) / fb * fb;
            self.write(&vec![0; gap as usize], now, events);
            self.write(data, now, events);
        } else {
            let skip = (delta.unsigned_abs()).min(data.len() as u64) as usize;
            self.write(&data[skip..], now, events);
        }
    }

    pub(crate) fn write(&mut self, data: &[u8], now: u64, events: &mut Vec<Event>) {
        if !data.is_empty() {
            // The write's first frame lands after everything buffered and everything the
            // resampler still owes.
            let pos = self.mixed_total + self.buf.len() as u64 + self.conv.owed_frames();
            if self.stamps.len() >= MAX_STAMPS {
                self.stamps_dropped += 1;
            } else {
                self.stamps.push_back(Stamp { pos, arrival: now });
            }
        }
        self.write_index += data.len() as u64;
        self.requested = self.requested.saturating_sub(data.len() as u64);
        // Input beyond the room left is dropped before conversion, so that a big write of
        // a low rate never expands in memory (8-bit mono 8 kHz grows 48-fold).
        let fb = self.conv.frame_bytes();
        let used = self.buf.len() as u64 + self.conv.owed_frames();
        let room_out = (self.cap_frames as u64).saturating_sub(used);
        let room_in = room_out * u64::from(self.conv.rate) / u64::from(OUT_RATE) + 1;
        let room_bytes = room_in.saturating_mul(fb as u64).min(data.len() as u64) as usize;
        // Whole frames only, so the converter's frame phase (its leftover) stays intact.
        let mut excess = ((data.len() - room_bytes) / fb * fb) as u64;
        let keep = data.len() - excess as usize;
        for piece in data[..keep].chunks(CONVERT_FRAMES * fb) {
            self.conv.push(piece, &mut self.buf);
        }
        if self.buf.len() > self.cap_frames {
            let over = self.buf.len() - self.cap_frames;
            self.buf.truncate(self.cap_frames);
            excess += over as u64 * u64::from(self.conv.rate) / u64::from(OUT_RATE) * fb as u64;
        }
        if excess > 0 {
            // The dropped audio counts as read so the indices stay consistent.
            self.read_base += excess;
            events.push(Event::Overflow(excess.min(u64::from(u32::MAX)) as u32));
            // Writes whose first frame was cut off will never be heard.
            let end = self.mixed_total + self.buf.len() as u64 + self.conv.owed_frames();
            self.stamps.retain(|s| s.pos < end);
        }
        let buffered = self.write_index - self.read_index();
        if !self.playing && buffered >= u64::from(self.attr.prebuf.max(1)) {
            self.start(events);
        }
    }

    fn start(&mut self, events: &mut Vec<Event>) {
        self.playing = true;
        self.underrun_sent = false;
        if !self.started {
            self.started = true;
            events.push(Event::Started);
        }
    }

    /// Adds up to `out.len() / 2` frames into `out` (interleaved stereo) and consumes them.
    ///
    /// `next_play` is when `out`'s first frame is heard (monotonic ns), if the host said;
    /// writes whose first frame is mixed now get their delay recorded in `delays`.
    pub(crate) fn mix_into(
        &mut self,
        out: &mut [f32],
        next_play: Option<u64>,
        delays: &mut Delays,
    ) {
        delays.dropped += std::mem::take(&mut self.stamps_dropped);
        let want = out.len() / 2;
        if !self.is_running() {
            if self.started && !self.corked {
                // Prebuffering again after an underrun: the listener hears silence.
                self.underrun_out += want as u64;
            }
            return;
        }
        let n = want.min(self.buf.len());
        let [gl, gr] = if self.muted { [0.0; 2] } else { self.gain };
        for (o, f) in out.chunks_exact_mut(2).zip(self.buf.drain(..n)) {
            o[0] += f[0] * gl;
            o[1] += f[1] * gr;
        }
        let first = self.mixed_total;
        self.consumed_out += n as u64;
        self.mixed_total += n as u64;
        while let Some(s) = self.stamps.front().copied() {
            if s.pos >= self.mixed_total {
                break;
            }
            self.stamps.pop_front();
            if let Some(t0) = next_play {
                let offset = s.pos.saturating_sub(first);
                let heard = t0 + offset * 1_000_000_000 / u64::from(OUT_RATE);
                delays.push(heard.saturating_sub(s.arrival));
            }
        }
        if n > 0 {
            if self.underrun_out > 0 {
                self.underrun_out = 0;
                self.playing_out = 0;
            }
            self.playing_out += n as u64;
        }
        if n < want {
            self.underrun_out += (want - n) as u64;
        }
    }

    /// Flow control after a mix: drain completion, underflow, and `Request`s.
    pub(crate) fn after_mix(&mut self, events: &mut Vec<Event>) {
        if self.buf.is_empty() && self.is_running() {
            if let Some(seq) = self.drain.take() {
                events.push(Event::Drained(seq));
            } else if self.started && !self.underrun_sent {
                self.underrun_sent = true;
                events.push(Event::Underflow(self.read_index() as i64));
                if self.attr.prebuf > 0 {
                    self.playing = false;
                }
            }
        }
        self.request_more(events);
    }

    fn request_more(&mut self, events: &mut Vec<Event>) {
        if self.drain.is_some() {
            return;
        }
        let buffered = self.write_index - self.read_index();
        let have = buffered + self.requested;
        let target = u64::from(self.attr.target_length);
        if have + u64::from(self.attr.min_request) <= target {
            let missing = target - have;
            self.requested += missing;
            events.push(Event::Request(missing as u32));
        }
    }

    /// Discards buffered audio (flush); the read index jumps to the write index.
    pub(crate) fn flush(&mut self, events: &mut Vec<Event>) {
        self.buf.clear();
        // The flushed writes will never be heard: no delay to measure.
        self.stamps.clear();
        self.conv.reset();
        self.read_base = self.write_index;
        self.consumed_out = 0;
        if self.attr.prebuf > 0 {
            self.playing = false;
        }
        self.request_more(events);
    }

    /// Starts playback even if the prebuffer is not full (trigger).
    pub(crate) fn trigger(&mut self, events: &mut Vec<Event>) {
        self.start(events);
    }

    /// Re-enters prebuffering.
    pub(crate) fn prebuf(&mut self) {
        self.playing = false;
    }

    /// Registers a drain; returns the sequence to ack now if nothing is buffered.
    pub(crate) fn drain(&mut self, seq: u32, events: &mut Vec<Event>) -> Option<u32> {
        self.conv.finish(&mut self.buf);
        if self.buf.is_empty() {
            return Some(seq);
        }
        self.drain = Some(seq);
        // Whatever is buffered must play out even below the prebuffer mark.
        self.start(events);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mono_s16_upmixes_and_resamples_to_48k() {
        let mut c = Converter::new(Format::S16Le, 1, 24_000);
        let sine = |t: f64| (t * 1000.0 * std::f64::consts::TAU).sin() * 0.5;
        let data: Vec<u8> = (0..2400)
            .flat_map(|i| ((sine(f64::from(i) / 24_000.0) * 32767.0) as i16).to_le_bytes())
            .collect();
        let mut out = VecDeque::new();
        // Split mid-frame on purpose: the leftover byte must carry over.
        c.push(&data[..1001], &mut out);
        c.push(&data[1001..], &mut out);
        c.finish(&mut out);
        assert_eq!(out.len(), 4800);
        // Same 1 kHz sine at 48 kHz; the startup delay is removed up to rubato's rounding
        // (one frame, 21 us). The filter's edges are skipped.
        let max_err = |lag: i32| -> f32 {
            (200..4600)
                .map(|i: i32| {
                    let f = out[i as usize];
                    assert_eq!(f[0], f[1], "mono must be up-mixed to both channels");
                    (f[0] - sine(f64::from(i + lag) / 48_000.0) as f32).abs()
                })
                .fold(0.0, f32::max)
        };
        let best = (-1..=1).map(max_err).fold(f32::MAX, f32::min);
        assert!(best < 0.01, "resampled sine is off by {best}");
    }

    #[test]
    fn read_index_follows_consumption_and_requests_refill() {
        let attr = Attr {
            max_length: 96_000,
            target_length: 19_200,
            prebuf: 9_600,
            min_request: 4_800,
        };
        let mut p = Playback::new(Converter::new(Format::F32Le, 2, 48_000), attr, false);
        let mut ev = Vec::new();
        p.write(&vec![0u8; 19_200], 0, &mut ev);
        assert_eq!(ev, vec![Event::Started]);
        ev.clear();
        let mut out = vec![0.0; 2 * 1200];
        p.mix_into(&mut out, None, &mut Delays::default());
        p.after_mix(&mut ev);
        assert_eq!(p.read_index(), 9_600);
        assert_eq!(ev, vec![Event::Request(9_600)]);
    }

    fn stream(prebuf: u32) -> Playback {
        let attr = Attr {
            max_length: 16_000,
            target_length: 8_000,
            prebuf,
            min_request: 800,
        };
        Playback::new(Converter::new(Format::F32Le, 2, 48_000), attr, false)
    }

    fn samples(v: f32, frames: usize) -> Vec<u8> {
        (0..frames * 2).flat_map(|_| v.to_le_bytes()).collect()
    }

    #[test]
    fn seeking_writes_leave_silence_forward_and_never_rewrite() {
        use crate::frame::Seek;
        let mut p = stream(0);
        let mut ev = Vec::new();
        // 10 frames, then 5 frames seeked 4 frames (32 bytes) ahead: 4 frames of silence.
        p.write_at(Seek::Relative(0), &samples(0.5, 10), 0, &mut ev);
        p.write_at(Seek::Relative(32), &samples(0.25, 5), 0, &mut ev);
        assert_eq!(p.write_index, 8 * 19);
        // Back 3 frames over what is buffered: only the last 2 of 5 frames are new.
        p.write_at(Seek::Absolute(8 * 16), &samples(1.0, 5), 0, &mut ev);
        assert_eq!(p.write_index, 8 * 21);
        let mut out = vec![0.0; 2 * 21];
        p.mix_into(&mut out, None, &mut Delays::default());
        let left: Vec<f32> = out.chunks(2).map(|f| f[0]).collect();
        let mut want = vec![0.5; 10];
        want.extend([0.0; 4]);
        want.extend([0.25; 5]);
        want.extend([1.0; 2]);
        assert_eq!(left, want);
    }

    #[test]
    fn stream_volume_scales_and_mute_silences_while_draining() {
        let mut p = stream(0);
        let mut ev = Vec::new();
        p.write(&samples(0.5, 20), 0, &mut ev);
        p.gain = [0.5, 1.0];
        let mut out = vec![0.0; 20];
        p.mix_into(&mut out, None, &mut Delays::default());
        assert_eq!(&out[..2], &[0.25, 0.5]);
        p.muted = true;
        let mut out = vec![0.0; 20];
        p.mix_into(&mut out, None, &mut Delays::default());
        assert!(out.iter().all(|s| *s == 0.0));
        assert_eq!(p.read_index(), 8 * 20);
    }

    #[test]
    fn cork_silences_and_keeps_the_buffer() {
        let mut p = stream(800);
        let mut ev = Vec::new();
        p.write(&samples(0.25, 500), 0, &mut ev);
        p.corked = true;
        let mut out = vec![0.0; 200];
        p.mix_into(&mut out, None, &mut Delays::default());
        assert!(out.iter().all(|s| *s == 0.0));
        assert_eq!(p.read_index(), 0);
        p.corked = false;
        p.mix_into(&mut out, None, &mut Delays::default());
        assert!(out.iter().all(|s| *s == 0.25));
        assert_eq!(p.read_index(), 800);
    }

    #[test]
    fn drain_acks_when_the_buffer_empties_even_below_prebuf() {
        let mut p = stream(8_000);
        let mut ev = Vec::new();
        p.write(&samples(0.5, 300), 0, &mut ev);
        assert!(ev.is_empty(), "still prebuffering: {ev:?}");
        assert_eq!(p.drain(7, &mut ev), None);
        assert_eq!(ev, vec![Event::Started]);
        ev.clear();
        let mut out = vec![0.0; 2 * 1000];
        p.mix_into(&mut out, None, &mut Delays::default());
        // Every frame written is played, including the one the interpolator held back.
        assert_eq!(out.iter().filter(|s| **s == 0.5).count(), 600);
        p.after_mix(&mut ev);
        assert_eq!(ev.first(), Some(&Event::Drained(7)), "{ev:?}");
        // An empty stream acks a drain at once.
        assert_eq!(p.drain(8, &mut ev), Some(8));
    }

    #[test]
    fn flush_discards_and_moves_read_to_write() {
        let mut p = stream(800);
        let mut ev = Vec::new();
        p.write(&samples(0.5, 900), 0, &mut ev);
        p.flush(&mut ev);
        assert_eq!(p.read_index(), p.write_index);
        let mut out = vec![0.0; 200];
        p.write(&samples(0.5, 10), 0, &mut ev);
        p.mix_into(&mut out, None, &mut Delays::default());
        assert!(out.iter().all(|s| *s == 0.0), "flushed audio still played");
    }

    #[test]
    fn overflow_is_bounded_and_reported() {
        let mut p = stream(800);
        let mut ev = Vec::new();
        p.write(&samples(0.5, 4_000), 0, &mut ev);
        assert!(p.buf.len() <= p.cap_frames);
        assert!(
            ev.iter().any(|e| matches!(e, Event::Overflow(n) if *n > 0)),
            "{ev:?}"
        );
    }

    #[test]
    fn underflow_once_then_prebuffer_again() {
        let mut p = stream(800);
        let mut ev = Vec::new();
        p.write(&samples(0.5, 200), 0, &mut ev);
        let mut out = vec![0.0; 2 * 400];
        p.mix_into(&mut out, None, &mut Delays::default());
        ev.clear();
        p.after_mix(&mut ev);
        assert!(matches!(ev[0], Event::Underflow(_)), "{ev:?}");
        assert!(!p.is_running());
        ev.clear();
        p.after_mix(&mut ev);
        assert!(
            !ev.iter().any(|e| matches!(e, Event::Underflow(_))),
            "{ev:?}"
        );
    }

    /// Mixes `frames` with the block heard at `next_play`; returns the new delay samples.
    fn mix_at(p: &mut Playback, frames: usize, next_play: u64, d: &mut Delays) -> Vec<u64> {
        let mut out = vec![0.0; 2 * frames];
        p.mix_into(&mut out, Some(next_play), d);
        std::mem::take(&mut d.samples)
    }

    #[test]
    fn write_delay_is_from_arrival_to_the_first_frame_on_the_timeline() {
        let mut p = stream(0);
        let mut ev = Vec::new();
        let mut d = Delays::default();
        // Two 240-frame writes (5 ms each) at 1 ms and 2 ms; the block is heard at 10 ms.
        p.write(&samples(0.1, 240), 1_000_000, &mut ev);
        p.write(&samples(0.1, 240), 2_000_000, &mut ev);
        p.write(&samples(0.1, 240), 3_000_000, &mut ev);
        // The second write starts 240 frames (5 ms) into the block.
        assert_eq!(
            mix_at(&mut p, 480, 10_000_000, &mut d),
            vec![9_000_000, 13_000_000]
        );
        // The third starts the next block, heard at 20 ms.
        assert_eq!(mix_at(&mut p, 480, 20_000_000, &mut d), vec![17_000_000]);
        assert_eq!(mix_at(&mut p, 480, 30_000_000, &mut d), Vec::<u64>::new());
    }

    #[test]
    fn flush_discards_pending_write_stamps() {
        let mut p = stream(0);
        let mut ev = Vec::new();
        let mut d = Delays::default();
        p.write(&samples(0.1, 480), 1_000_000, &mut ev);
        p.flush(&mut ev);
        p.write(&samples(0.1, 480), 4_000_000, &mut ev);
        assert_eq!(mix_at(&mut p, 480, 10_000_000, &mut d), vec![6_000_000]);
    }

    #[test]
    fn corked_writes_are_measured_when_they_play() {
        let mut p = stream(0);
        let mut ev = Vec::new();
        let mut d = Delays::default();
        p.corked = true;
        p.write(&samples(0.1, 480), 1_000_000, &mut ev);
        assert!(mix_at(&mut p, 480, 10_000_000, &mut d).is_empty());
        p.corked = false;
        assert_eq!(mix_at(&mut p, 480, 20_000_000, &mut d), vec![19_000_000]);
    }

    #[test]
    fn resampled_write_lands_after_what_the_resampler_owes() {
        let mut p = Playback::new(
            Converter::new(Format::S16Le, 2, 44_100),
            Attr {
                max_length: 176_400,
                target_length: 88_200,
                prebuf: 0,
                min_request: 4,
            },
            false,
        );
        let mut ev = Vec::new();
        let mut d = Delays::default();
        // 441 frames = 10 ms each; the resampler holds back part of every write.
        p.write(&vec![0; 441 * 4], 0, &mut ev);
        p.write(&vec![0; 441 * 4], 0, &mut ev);
        let mut got = Vec::new();
        for k in 0..4 {
            got.extend(mix_at(&mut p, 480, 10_000_000 * (k + 1), &mut d));
        }
        // The second write's first frame is 480 output frames (10 ms) after the first's.
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[1] - got[0], 10_000_000, "{got:?}");
    }

    #[test]
    fn write_stamps_and_delays_are_bounded() {
        let mut p = Playback::new(
            Converter::new(Format::U8, 1, 48_000),
            Attr {
                max_length: 96_000,
                target_length: 48_000,
                prebuf: 0,
                min_request: 1,
            },
            false,
        );
        let mut ev = Vec::new();
        let mut d = Delays::default();
        for t in 0..(MAX_STAMPS as u64 + 10) {
            p.write(&[128], t, &mut ev);
        }
        assert_eq!(p.stamps.len(), MAX_STAMPS);
        let got = mix_at(&mut p, 48_000, 1_000_000_000, &mut d);
        assert_eq!(got.len(), MAX_STAMPS);
        assert_eq!(d.dropped, 10);
        let mut full = Delays {
            samples: vec![0; MAX_DELAYS],
            dropped: 0,
        };
        full.push(1);
        assert_eq!((full.samples.len(), full.dropped), (MAX_DELAYS, 1));
    }

    #[test]
    fn underrun_and_playing_time_are_reported_in_client_bytes() {
        let mut p = stream(0);
        let mut ev = Vec::new();
        let mut d = Delays::default();
        p.write(&samples(0.1, 300), 0, &mut ev);
        mix_at(&mut p, 200, 0, &mut d);
        assert_eq!((p.playing_for(), p.underrun_for()), (200 * 8, 0));
        // 100 frames left: the next 200-frame block runs dry for 100 frames.
        mix_at(&mut p, 200, 0, &mut d);
        assert_eq!((p.playing_for(), p.underrun_for()), (300 * 8, 100 * 8));
        p.write(&samples(0.1, 300), 0, &mut ev);
        mix_at(&mut p, 50, 0, &mut d);
        assert_eq!((p.playing_for(), p.underrun_for()), (50 * 8, 0));
    }
}
