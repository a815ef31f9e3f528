//! One connected client: a reader thread running the protocol state machine
//! (auth → client name → streams) and a writer thread draining a bounded outbox, so that
//! neither `mix` nor other clients ever block on this client's socket.

use crate::frame::{Frame, FrameDecoder, HEADER};
use crate::stream::{Attr, Converter, Delays, Event, Format, Playback};
use crate::{lock, Clock, Notes, PulseError, PulseStats, SharedRef};
use pulseaudio::protocol::{self as pa, Command};
use std::collections::HashMap;
use std::ffi::CString;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::time::SystemTime;

/// Messages queued for one client before we consider it stuck and drop it.
const OUTBOX: usize = 512;

const SINK_NAME: &str = "crosscast";
const MONITOR_NAME: &str = "crosscast.monitor";

/// A client as seen by `mix` and by the other threads.
pub(crate) struct Slot {
    out: SyncSender<Vec<u8>>,
    sock: UnixStream,
    version: u16,
    streams: HashMap<u32, Playback>,
    next_channel: u32,
    /// Set when the outbox overflowed: the client does not read its socket.
    stuck: bool,
    /// How notes name this client: its `application.name` once it said, else `None`.
    name: Option<String>,
    /// Whether the "connected" note was written.
    announced: bool,
    /// Stream creations refused for a limit; past `max_streams` the client is flooding.
    refused_streams: usize,
}

impl Slot {
    /// Number of playback streams.
    pub(crate) fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Closes the socket; the reader thread then removes the slot.
    pub(crate) fn shutdown(&self) {
        let _ = self.sock.shutdown(Shutdown::Both);
    }

    /// Queues a message; a client whose outbox is full is disconnected.
    fn send(&mut self, msg: Vec<u8>) {
        match self.out.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                // The reader thread notes the reason when it sees the socket close.
                self.stuck = true;
                self.shutdown();
            }
            Err(TrySendError::Disconnected(_)) => self.shutdown(),
        }
    }

    fn send_events(&mut self, channel: u32, events: &mut Vec<Event>) {
        for ev in events.drain(..) {
            let msg = match ev {
                Event::Started => command(&Command::Started(channel), self.version),
                Event::Request(length) => command(
                    &Command::Request(pa::Request { channel, length }),
                    self.version,
                ),
                Event::Overflow(n) => command(&Command::Overflow(n), self.version),
                Event::Underflow(offset) => command(
                    &Command::Underflow(pa::Underflow { channel, offset }),
                    self.version,
                ),
                Event::Drained(seq) => ack(seq),
            };
            if let Some(msg) = msg {
                self.send(msg);
            }
        }
    }

    /// Adds this client's running streams into `out` and sends the resulting flow control.
    pub(crate) fn mix(&mut self, out: &mut [f32], next_play: Option<u64>, delays: &mut Delays) {
        let mut events = Vec::new();
        let mut all = Vec::new();
        for (&ch, s) in self.streams.iter_mut() {
            s.mix_into(out, next_play, delays);
            s.after_mix(&mut events);
            if !events.is_empty() {
                all.push((ch, std::mem::take(&mut events)));
            }
        }
        for (ch, mut ev) in all {
            self.send_events(ch, &mut ev);
        }
    }
}

fn encode(f: impl FnOnce(&mut Vec<u8>) -> Result<(), pa::ProtocolError>) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    match f(&mut v) {
        Ok(()) => Some(v),
        Err(e) => {
            // Only our own replies are encoded here; failing means a bug, not bad input.
            log::error!("pulse: cannot encode a message: {e}");
            None
        }
    }
}

fn command(cmd: &Command, version: u16) -> Option<Vec<u8>> {
    encode(|v| pa::write_command_message(v, u32::MAX, cmd, version))
}

fn ack(seq: u32) -> Option<Vec<u8>> {
    encode(|v| pa::write_ack_message(v, seq))
}

fn error(seq: u32, e: pa::PulseError) -> Option<Vec<u8>> {
    encode(|v| pa::write_error(v, seq, &e))
}

fn reply<R: pa::CommandReply>(seq: u32, r: &R, version: u16) -> Option<Vec<u8>> {
    encode(|v| pa::write_reply_message(v, seq, r, version))
}

/// Registers a new connection and starts its threads; refuses it past `max_clients`.
pub(crate) fn spawn(id: u64, conn: UnixStream, shared: SharedRef) -> Result<(), PulseError> {
    let (tx, rx) = sync_channel(OUTBOX);
    let writer = conn.try_clone()?;
    {
        let mut g = lock(&shared);
        if g.clients.len() >= g.limits.max_clients {
            let max = g.limits.max_clients;
            g.notes.push(format!(
                "client {id} refused: the limit of {max} connected clients is reached"
            ));
            g.stats.clients_refused += 1;
            return Ok(());
        }
        let slot = Slot {
            out: tx,
            sock: conn.try_clone()?,
            version: pa::MIN_VERSION,
            streams: HashMap::new(),
            next_channel: 0,
            stuck: false,
            name: None,
            announced: false,
            refused_streams: 0,
        };
        g.clients.insert(id, slot);
    }
    let spawned = std::thread::Builder::new()
        .name(format!("pulse-w{id}"))
        .spawn(move || write_loop(writer, rx))
        .and_then(|_| {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("pulse-c{id}"))
                .spawn(move || {
                    // The protocol decoder is third-party code fed by the sandbox: if it ever
                    // panics, drop this client like any other bad one, not leak its slot.
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        read_loop(id, conn, &shared)
                    }));
                    let mut reason = match r {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(error_chain(&e)),
                        Err(_) => Some("the protocol decoder panicked".to_owned()),
                    };
                    let mut g = lock(&shared);
                    let Some(slot) = g.clients.remove(&id) else {
                        return;
                    };
                    slot.shutdown();
                    if slot.stuck {
                        // Its socket was closed under it, so the reader saw EOF or an error.
                        reason = Some("it does not read its socket".to_owned());
                    }
                    let who = describe(id, slot.name.as_deref());
                    match reason {
                        Some(r) => {
                            g.stats.clients_dropped += 1;
                            log::warn!("pulse: {who} dropped: {r}");
                            g.notes.push(format!("{who} dropped: {r}"));
                        }
                        None => g.notes.push(format!("{who} disconnected")),
                    }
                })
        });
    if let Err(e) = spawned {
        if let Some(slot) = lock(&shared).clients.remove(&id) {
            slot.shutdown();
        }
        return Err(e.into());
    }
    Ok(())
}

/// An error and its sources on one line, for notes.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// How notes name a client.
fn describe(id: u64, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("client {id} ({n:?})"),
        None => format!("client {id}"),
    }
}

/// The client's `application.name`, shortened and made printable for notes.
fn app_name(props: &pa::Props) -> Option<String> {
    let raw = props.get(pa::Prop::ApplicationName)?;
    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
    let name: String = String::from_utf8_lossy(raw)
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    Some(name)
}

fn write_loop(mut sock: UnixStream, rx: Receiver<Vec<u8>>) {
    for msg in rx {
        if sock.write_all(&msg).is_err() {
            let _ = sock.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// Reads frames until EOF or a violation; the caller removes the client afterwards.
fn read_loop(id: u64, mut sock: UnixStream, shared: &SharedRef) -> Result<(), PulseError> {
    let mut dec = FrameDecoder::new(lock(shared).limits.max_frame);
    let mut payload = Vec::new();
    loop {
        let mut hdr = [0u8; HEADER];
        match sock.read_exact(&mut hdr) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let h = dec.header(&hdr)?;
        payload.resize(h.len as usize, 0);
        sock.read_exact(&mut payload)?;
        let received = (HEADER + payload.len()) as u64;
        // Decode outside the lock: a slow or (crate bug) panicking decode affects only us.
        let (seq, cmd) = match dec.frame(&h, &payload) {
            Ok(Frame::Audio { channel, seek }) => {
                let mut g = lock(shared);
                g.stats.bytes_received += received;
                let now = (g.clock)();
                let Some(slot) = g.clients.get_mut(&id) else {
                    return Ok(());
                };
                let Some(s) = slot.streams.get_mut(&channel) else {
                    return Err(PulseError::Violation("audio for an unknown channel"));
                };
                let mut events = Vec::new();
                s.write_at(seek, &payload, now, &mut events);
                slot.send_events(channel, &mut events);
                continue;
            }
            Ok(Frame::Auth { seq, version }) => {
                let mut g = lock(shared);
                g.stats.bytes_received += received;
                let Some(slot) = g.clients.get_mut(&id) else {
                    return Ok(());
                };
                slot.version = version;
                // No shm/memfd: audio comes inline on the socket, nothing to map from the sandbox.
                let r = pa::AuthReply {
                    version,
                    use_memfd: false,
                    use_shm: false,
                };
                if let Some(m) = reply(seq, &r, version) {
                    slot.send(m);
                }
                continue;
            }
            Ok(Frame::Command { seq, cmd }) => (seq, *cmd),
            Err(e) => {
                lock(shared).stats.bytes_received += received;
                return Err(e);
            }
        };
        let mut g = lock(shared);
        let total_streams = g.clients.values().map(Slot::stream_count).sum();
        let crate::Shared {
            limits,
            clients,
            next_play,
            clock,
            notes,
            stats,
            ..
        } = &mut *g;
        let Some(slot) = clients.get_mut(&id) else {
            return Ok(());
        };
        let mut ctx = Ctx {
            limits,
            total_streams,
            next_play: *next_play,
            clock: *clock,
            notes,
            stats,
        };
        let msg = handle(id, slot, seq, cmd, &mut ctx)?;
        if let Some(m) = msg {
            slot.send(m);
        }
    }
}

fn sink_spec() -> pa::SampleSpec {
    pa::SampleSpec {
        format: pa::SampleFormat::Float32Le,
        channels: 2,
        sample_rate: crate::MIX_RATE,
    }
}

fn cstring(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

fn sink_info() -> pa::SinkInfo {
    let mut s = pa::SinkInfo::new_dummy(0);
    s.name = cstring(SINK_NAME);
    s.description = Some(cstring("crosscast stream"));
    s.sample_spec = sink_spec();
    s.channel_map = pa::ChannelMap::stereo();
    s.monitor_source_name = Some(cstring(MONITOR_NAME));
    s
}

/// What a command handler may use of the shared state besides its own client.
struct Ctx<'a> {
    limits: &'a crate::Limits,
    /// Streams of all clients.
    total_streams: usize,
    next_play: Option<u64>,
    clock: Clock,
    notes: &'a mut Notes,
    stats: &'a mut PulseStats,
}

/// Answers one command; an error disconnects the client.
fn handle(
    id: u64,
    slot: &mut Slot,
    seq: u32,
    cmd: Command,
    ctx: &mut Ctx<'_>,
) -> Result<Option<Vec<u8>>, PulseError> {
    let ver = slot.version;
    if !slot.announced {
        // libpulse names itself right after auth; a client that does not is noted unnamed.
        slot.announced = true;
        if let Command::SetClientName(props) = &cmd {
            slot.name = app_name(props);
        }
        ctx.notes
            .push(format!("{} connected", describe(id, slot.name.as_deref())));
    }
    if let Command::CreatePlaybackStream(p) = cmd {
        return create(id, slot, seq, p, ctx);
    }
    Ok(match cmd {
        Command::Auth(_) => error(seq, pa::PulseError::BadState),
        Command::SetClientName(_) => reply(
            seq,
            &pa::SetClientNameReply {
                client_id: id as u32,
            },
            ver,
        ),
        Command::GetServerInfo => {
            // SDL2 dereferences both default names: they must be non-null.
            let si = pa::ServerInfo {
                server_name: Some(cstring("pulseaudio")),
                server_version: Some(cstring("16.1.0-crosscast")),
                user_name: Some(cstring("game")),
                host_name: Some(cstring("crosscast")),
                sample_spec: sink_spec(),
                channel_map: pa::ChannelMap::stereo(),
                default_sink_name: Some(cstring(SINK_NAME)),
                default_source_name: Some(cstring(MONITOR_NAME)),
                cookie: 0,
            };
            reply(seq, &si, ver)
        }
        Command::GetSinkInfo(q) => {
            let ok = q.index.is_none_or(|i| i == 0)
                && q.name.as_ref().is_none_or(|n| {
                    n.as_bytes() == SINK_NAME.as_bytes() || n.as_c_str() == pa::DEFAULT_SINK
                });
            if ok {
                reply(seq, &sink_info(), ver)
            } else {
                error(seq, pa::PulseError::NoEntity)
            }
        }
        Command::GetSinkInfoList => reply(seq, &vec![sink_info()], ver),
        Command::GetSourceInfoList => reply(seq, &Vec::<pa::SourceInfo>::new(), ver),
        Command::LookupSink(_) => reply(seq, &pa::LookupReply(0), ver),
        Command::Subscribe(_)
        | Command::SetPlaybackStreamName(_)
        | Command::UpdatePlaybackStreamProplist(_)
        | Command::UpdateClientProplist(_) => ack(seq),
        Command::GetPlaybackLatency(q) => match slot.streams.get(&q.channel) {
            Some(s) => {
                // read_index counts frames already mixed, and the next frame the mix reads
                // is heard at next_play. So the client's own estimate, now + (write_index -
                // read_index) / rate + sink_usec, is exactly when its last written sample is
                // heard, if sink_usec is the time from now to next_play. Computed now, at
                // reply time, so it shrinks between mixes instead of jumping.
                let sink_usec = ctx
                    .next_play
                    .map_or(0, |t| t.saturating_sub((ctx.clock)()) / 1_000);
                let r = pa::PlaybackLatency {
                    sink_usec,
                    source_usec: 0,
                    playing: s.is_running(),
                    local_time: q.now,
                    remote_time: SystemTime::now(),
                    write_offset: s.write_index as i64,
                    read_offset: s.read_index() as i64,
                    underrun_for: s.underrun_for(),
                    playing_for: s.playing_for(),
                };
                reply(seq, &r, ver)
            }
            None => error(seq, pa::PulseError::NoEntity),
        },
        // A client sets the volume of its own streams only: the index is looked up among
        // them (stream indices are the client's channel numbers).
        Command::SetSinkInputVolume(v) => with_stream(slot, seq, v.index, |s, _| {
            s.gain = gain(&v.volume);
            true
        }),
        Command::SetSinkInputMute(m) => with_stream(slot, seq, m.index, |s, _| {
            s.muted = m.mute;
            true
        }),
        Command::CorkPlaybackStream(c) => with_stream(slot, seq, c.channel, |s, _| {
            s.corked = c.cork;
            true
        }),
        Command::FlushPlaybackStream(ch) => with_stream(slot, seq, ch, |s, ev| {
            s.flush(ev);
            true
        }),
        Command::TriggerPlaybackStream(ch) => with_stream(slot, seq, ch, |s, ev| {
            s.trigger(ev);
            true
        }),
        Command::PrebufPlaybackStream(ch) => with_stream(slot, seq, ch, |s, _| {
            s.prebuf();
            true
        }),
        Command::DrainPlaybackStream(ch) => {
            // The ack comes from `mix` when the buffer empties, unless it already is empty.
            with_stream(slot, seq, ch, |s, ev| s.drain(seq, ev).is_some())
        }
        Command::DeletePlaybackStream(ch) => match slot.streams.remove(&ch) {
            Some(_) => ack(seq),
            None => error(seq, pa::PulseError::NoEntity),
        },
        other => {
            log::debug!("pulse: client {id}: unimplemented {:?}", other.tag());
            error(seq, pa::PulseError::NotImplemented)
        }
    })
}

/// Runs `f` on a stream and acks when it returns true; unknown channels get `NoEntity`.
fn with_stream(
    slot: &mut Slot,
    seq: u32,
    ch: u32,
    f: impl FnOnce(&mut Playback, &mut Vec<Event>) -> bool,
) -> Option<Vec<u8>> {
    let mut events = Vec::new();
    let Some(s) = slot.streams.get_mut(&ch) else {
        return error(seq, pa::PulseError::NoEntity);
    };
    let ack_now = f(s, &mut events);
    // The ack goes first: libpulse expects the reply before the events it caused.
    let msg = if ack_now { ack(seq) } else { None };
    if let Some(m) = msg {
        slot.send(m);
    }
    slot.send_events(ch, &mut events);
    None
}

fn create(
    id: u64,
    slot: &mut Slot,
    seq: u32,
    p: pa::PlaybackStreamParams,
    ctx: &mut Ctx<'_>,
) -> Result<Option<Vec<u8>>, PulseError> {
    let limits = ctx.limits;
    let who = describe(id, slot.name.as_deref());
    let full = if slot.streams.len() >= limits.max_streams {
        Some(format!("{} streams per client", limits.max_streams))
    } else if ctx.total_streams >= limits.max_streams_total {
        Some(format!("{} streams in all", limits.max_streams_total))
    } else {
        None
    };
    if let Some(limit) = full {
        // An error reply is what libpulse handles best (the stream fails, the context
        // lives on); a client that keeps asking regardless is flooding and is dropped.
        slot.refused_streams += 1;
        if slot.refused_streams > limits.max_streams {
            return Err(PulseError::Violation(
                "stream flood: kept creating streams past the limit",
            ));
        }
        ctx.stats.streams_refused += 1;
        ctx.notes.push(format!(
            "{who}: stream refused: the limit of {limit} is reached"
        ));
        return Ok(error(seq, pa::PulseError::TooLarge));
    }
    // Newer clients (GStreamer's pulsesink) send no sample spec, only a list of formats.
    let (spec, format_info) = match spec_from_formats(&p) {
        Some(found) => found,
        None => (p.sample_spec, pa::FormatInfo::new(pa::FormatEncoding::Pcm)),
    };
    let format = match spec.format {
        pa::SampleFormat::U8 => Some(Format::U8),
        pa::SampleFormat::S16Le => Some(Format::S16Le),
        pa::SampleFormat::S32Le => Some(Format::S32Le),
        pa::SampleFormat::Float32Le => Some(Format::F32Le),
        _ => None,
    };
    let format = match format {
        Some(f)
            if (1..=2).contains(&spec.channels)
                && (8_000..=192_000).contains(&spec.sample_rate) =>
        {
            f
        }
        _ => {
            ctx.stats.streams_refused += 1;
            ctx.notes.push(format!(
                "{who}: stream refused: unsupported sample spec {:?} {} ch {} Hz",
                spec.format, spec.channels, spec.sample_rate
            ));
            return Ok(error(seq, pa::PulseError::NotSupported));
        }
    };
    let conv = Converter::new(format, usize::from(spec.channels), spec.sample_rate);
    let attr = fill_attr(
        &p.buffer_attr,
        conv.frame_bytes() as u32,
        spec.sample_rate,
        limits,
    );
    let channel = slot.next_channel;
    slot.next_channel = slot.next_channel.wrapping_add(1);
    let mut s = Playback::new(conv, attr, p.flags.start_corked);
    if let Some(v) = &p.cvolume {
        s.gain = gain(v);
    }
    s.muted = p.flags.start_muted.unwrap_or(false);
    let buffer_attr = pa::stream::BufferAttr {
        max_length: attr.max_length,
        target_length: attr.target_length,
        pre_buffering: attr.prebuf,
        minimum_request_length: attr.min_request,
        fragment_size: 0,
    };
    let r = pa::CreatePlaybackStreamReply {
        channel,
        stream_index: channel,
        requested_bytes: s.initial_request(),
        buffer_attr,
        sample_spec: spec,
        channel_map: if p.channel_map.num_channels() == spec.channels {
            p.channel_map
        } else if spec.channels == 1 {
            pa::ChannelMap::mono()
        } else {
            pa::ChannelMap::stereo()
        },
        stream_latency: 0,
        sink_index: 0,
        sink_name: Some(cstring(SINK_NAME)),
        suspended: false,
        format: format_info,
    };
    slot.streams.insert(channel, s);
    Ok(reply(seq, &r, slot.version))
}

/// The sample spec of the first PCM format a client offers, for a stream created without a
/// valid sample spec (protocol 21's format negotiation), with the format info that answers
/// it; `None` when the sample spec itself is valid or no offered format is usable PCM.
///
/// Format properties are JSON values: `format.sample_format` = `"s16le"`, `format.rate` =
/// `44100` (or a list such as `[ 44100, 48000 ]`, of which 48 kHz is preferred),
/// `format.channels` = `2`.
fn spec_from_formats(p: &pa::PlaybackStreamParams) -> Option<(pa::SampleSpec, pa::FormatInfo)> {
    if p.sample_spec.format != pa::SampleFormat::Invalid && p.sample_spec.channels > 0 {
        return None;
    }
    let text = |f: &pa::FormatInfo, key: &str| -> Option<String> {
        let key = CString::new(key).ok()?;
        let v = f.props.get_bytes(&key)?;
        let v = v.strip_suffix(&[0]).unwrap_or(v);
        Some(String::from_utf8_lossy(v).trim().to_owned())
    };
    p.formats
        .iter()
        .filter(|f| f.encoding == pa::FormatEncoding::Pcm)
        .find_map(|f| {
            let format = match text(f, "format.sample_format")?.trim_matches('"') {
                "u8" => pa::SampleFormat::U8,
                "s16le" => pa::SampleFormat::S16Le,
                "s32le" => pa::SampleFormat::S32Le,
                "float32le" => pa::SampleFormat::Float32Le,
                _ => return None,
            };
            let rates: Vec<u32> = text(f, "format.rate")?
                .trim_matches(|c| c == '[' || c == ']')
                .split(',')
                .filter_map(|r| r.trim().parse().ok())
                .collect();
            let rate = if rates.contains(&crate::MIX_RATE) {
                crate::MIX_RATE
            } else {
                *rates.first()?
            };
            let channels: u8 = text(f, "format.channels")?.parse().ok()?;
            let spec = pa::SampleSpec {
                format,
                channels,
                sample_rate: rate,
            };
            let mut info = pa::FormatInfo::new(pa::FormatEncoding::Pcm);
            let name = text(f, "format.sample_format")?;
            for (k, v) in [
                ("format.sample_format", name),
                ("format.rate", rate.to_string()),
                ("format.channels", channels.to_string()),
            ] {
                if let (Ok(k), Ok(v)) = (CString::new(k), CString::new(v)) {
                    info.props.set_bytes(k, v.as_bytes_with_nul());
                }
            }
            Some((spec, info))
        })
}

/// Linear gains (left, right) of a stream volume; one channel applies to both, and PulseAudio's
/// volume curve is the crate's (`to_linear`). Above 1 (software amplification) is capped at 4.
fn gain(v: &pa::ChannelVolume) -> [f32; 2] {
    let lin = |i: usize| {
        v.channels()
            .get(i)
            .or(v.channels().first())
            .map_or(1.0, |x| x.to_linear().clamp(0.0, 4.0))
    };
    [lin(0), lin(1)]
}

/// Replaces the client's -1s with our defaults and clamps everything to sane, frame-aligned bounds.
pub(crate) fn fill_attr(
    a: &pa::stream::BufferAttr,
    frame: u32,
    rate: u32,
    limits: &crate::Limits,
) -> Attr {
    let per_ms = |ms: u32| -> u32 {
        let bytes = u64::from(rate) * u64::from(ms) / 1000 * u64::from(frame);
        bytes.min(u64::from(u32::MAX)) as u32
    };
    let align = |x: u32| (x / frame).max(1) * frame;
    let cap = align(limits.max_stream_bytes.min(per_ms(limits.max_buffer_ms)));
    let max_length = if a.max_length == u32::MAX {
        cap
    } else {
        align(a.max_length.min(cap))
    };
    let tl = if a.target_length == u32::MAX {
        per_ms(2000)
    } else {
        a.target_length
    };
    // Not `clamp`: with tiny limits the 10 ms floor may exceed max_length.
    let target_length = align(tl.max(per_ms(10)).min(max_length));
    let mr = if a.minimum_request_length == u32::MAX {
        target_length / 4
    } else {
        a.minimum_request_length
    };
    let min_request = align(mr.min(target_length));
    let pb = if a.pre_buffering == u32::MAX {
        target_length
    } else {
        a.pre_buffering
    };
    let prebuf = if pb == 0 {
        0
    } else {
        align(pb.min(target_length))
    };
    Attr {
        max_length,
        target_length,
        prebuf,
        min_request,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unset() -> pa::stream::BufferAttr {
        pa::stream::BufferAttr {
            max_length: u32::MAX,
            target_length: u32::MAX,
            pre_buffering: u32::MAX,
            minimum_request_length: u32::MAX,
            fragment_size: u32::MAX,
        }
    }

    #[test]
    fn a_low_rate_stream_is_capped_by_duration_not_bytes() {
        let limits = crate::Limits::default();
        let a = pa::stream::BufferAttr {
            max_length: 1 << 20,
            ..unset()
        };
        // 8-bit mono 8 kHz: 1 MiB would be 131 s, 48x bigger as 48 kHz stereo f32.
        let attr = fill_attr(&a, 1, 8_000, &limits);
        assert_eq!(attr.max_length, 16_000, "{attr:?}");
        assert!(attr.target_length <= attr.max_length && attr.prebuf <= attr.target_length);
        let mut p = Playback::new(Converter::new(Format::U8, 1, 8_000), attr, false);
        let mut ev = Vec::new();
        // One maximal frame of audio, as a hostile client would send.
        p.write(&vec![200; limits.max_frame as usize], 0, &mut ev);
        // 2 s of 48 kHz stereo f32 is 768 000 bytes; the allocation stays near that.
        let bytes = p.buffer_bytes();
        assert!(bytes <= 800_000, "stream buffer holds {bytes} bytes");
        let dropped: u64 = ev
            .iter()
            .map(|e| match e {
                Event::Overflow(n) => u64::from(*n),
                _ => 0,
            })
            .sum();
        // All but about the 2 s that fit (resampler rounding aside) is reported dropped.
        assert!(dropped >= u64::from(limits.max_frame) - 16_100, "{ev:?}");
    }

    #[test]
    fn tiny_limits_do_not_panic_and_stay_ordered() {
        let limits = crate::Limits {
            max_buffer_ms: 1,
            max_stream_bytes: 3,
            ..crate::Limits::default()
        };
        let attr = fill_attr(&unset(), 8, 192_000, &limits);
        assert_eq!(attr.max_length, 8, "{attr:?}");
        assert!(attr.min_request <= attr.target_length && attr.target_length <= attr.max_length);
    }

    #[test]
    fn replies_fit_the_outbox_budget() {
        // The crate docs' memory bound counts each queued message as under 1 KiB.
        let v = pa::MAX_VERSION;
        let biggest = [
            reply(1, &vec![sink_info()], v),
            reply(1, &sink_info(), v),
            reply(1, &pa::CreatePlaybackStreamReply::default(), v),
        ];
        for m in biggest {
            let n = m.expect("encodes").len();
            assert!(n < 1024, "a reply of {n} bytes");
        }
    }
}
