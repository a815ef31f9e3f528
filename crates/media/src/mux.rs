//! One libavformat muxer (file or push output) fed with packets from the shared encode.

use crate::ffi_io::{output_as_with_interrupt, IoWatch};
use ffmpeg_next as ff;
use std::sync::Arc;

/// Which elementary stream a packet belongs to; also its stream index in every muxer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Video = 0,
    Audio = 1,
}

/// An encoded packet in its encoder's time base, shareable between output threads.
#[derive(Debug)]
pub(crate) struct EncodedPacket {
    pub(crate) kind: Kind,
    pub(crate) data: Box<[u8]>,
    pub(crate) pts: Option<i64>,
    pub(crate) dts: Option<i64>,
    pub(crate) duration: i64,
    pub(crate) key: bool,
    pub(crate) time_base: ff::Rational,
}

impl EncodedPacket {
    pub(crate) fn new(kind: Kind, pkt: &ff::Packet, time_base: ff::Rational) -> Arc<Self> {
        Arc::new(Self {
            kind,
            data: pkt.data().unwrap_or(&[]).into(),
            pts: pkt.pts(),
            dts: pkt.dts(),
            duration: pkt.duration(),
            key: pkt.is_key(),
            time_base,
        })
    }

    /// Decode timestamp in microseconds, for rebasing push sessions.
    pub(crate) fn dts_us(&self) -> Option<i64> {
        use ff::Rescale;
        self.dts
            .or(self.pts)
            .map(|t| t.rescale(self.time_base, ff::Rational::new(1, 1_000_000)))
    }
}

/// Codec parameters of the one encode, copied into every muxer.
#[derive(Clone)]
pub(crate) struct StreamSetup {
    pub(crate) video: ff::codec::Parameters,
    pub(crate) audio: ff::codec::Parameters,
    pub(crate) video_tb: ff::Rational,
    pub(crate) audio_tb: ff::Rational,
    pub(crate) frame_rate: ff::Rational,
}

pub(crate) struct Muxer {
    // Declared (so dropped) before `_interrupt`: closing may still poll the callback.
    ctx: ff::format::context::Output,
    /// Stream time bases chosen by the muxer in `write_header` (FLV forces 1/1000).
    stream_tb: [ff::Rational; 2],
    _interrupt: Option<crate::ffi_io::InterruptibleOutputGuard>,
}

impl Muxer {
    /// Opens `url` (file path or push URL), adds video and audio streams and writes the header.
    ///
    /// With a `watch`, blocking network I/O (connect, writes, close) gives up when the watch
    /// says so.
    pub(crate) fn open(
        url: &str,
        format: &str,
        io_options: ff::Dictionary<'_>,
        mux_options: ff::Dictionary<'_>,
        setup: &StreamSetup,
        watch: Option<Arc<IoWatch>>,
    ) -> Result<Self, String> {
        let (mut ctx, interrupt) = match watch {
            Some(w) => {
                let out = output_as_with_interrupt(url, format, io_options, w)
                    .map_err(|e| e.to_string())?;
                if !out.unused_options.is_empty() {
                    // An option FFmpeg ignores silently could be `tls_verify`: never go on
                    // without what was asked for.
                    return Err(format!(
                        "this FFmpeg build does not take the option(s) {}",
                        out.unused_options.join(", ")
                    ));
                }
                let (ctx, guard) = out.into_parts();
                (ctx, Some(guard))
            }
            None => (
                ff::format::output_as_with(url, format, io_options).map_err(|e| e.to_string())?,
                None,
            ),
        };
        for (params, tb) in [
            (&setup.video, setup.video_tb),
            (&setup.audio, setup.audio_tb),
        ] {
            let mut st = ctx
                .add_stream(None::<ff::Codec>)
                .map_err(|e| format!("cannot add stream: {e}"))?;
            st.set_parameters(params.clone());
            st.set_time_base(tb);
            if params.medium() == ff::media::Type::Video {
                st.set_avg_frame_rate(setup.frame_rate);
                st.set_rate(setup.frame_rate);
            }
        }
        ctx.write_header_with(mux_options)
            .map_err(|e| format!("cannot write header: {e}"))?;
        let stream_tb = [
            ctx.stream(0).map_or(setup.video_tb, |s| s.time_base()),
            ctx.stream(1).map_or(setup.audio_tb, |s| s.time_base()),
        ];
        Ok(Self {
            ctx,
            stream_tb,
            _interrupt: interrupt,
        })
    }

    /// Writes one packet, shifted back by `offset_us`; returns the payload size.
    pub(crate) fn write(&mut self, p: &EncodedPacket, offset_us: i64) -> Result<usize, ff::Error> {
        use ff::Rescale;
        let idx = p.kind as usize;
        let offset = offset_us.rescale(ff::Rational::new(1, 1_000_000), p.time_base);
        let mut pkt = ff::Packet::copy(&p.data);
        pkt.set_stream(idx);
        pkt.set_pts(p.pts.map(|t| t - offset));
        pkt.set_dts(p.dts.map(|t| t - offset));
        pkt.set_duration(p.duration);
        if p.key {
            pkt.set_flags(ff::packet::Flags::KEY);
        }
        pkt.rescale_ts(p.time_base, self.stream_tb[idx]);
        pkt.write_interleaved(&mut self.ctx)?;
        Ok(p.data.len())
    }

    /// Flushes the interleaving queue and writes the trailer (index, duration).
    pub(crate) fn finish(mut self) -> Result<(), ff::Error> {
        self.ctx.write_trailer()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_option_no_protocol_takes_fails_the_open() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("x.ts");
        let mut opts = ff::Dictionary::new();
        opts.set("tls_verify", "1");
        let setup = StreamSetup {
            video: ff::codec::Parameters::new(),
            audio: ff::codec::Parameters::new(),
            video_tb: ff::Rational::new(1, 30),
            audio_tb: ff::Rational::new(1, 48_000),
            frame_rate: ff::Rational::new(30, 1),
        };
        // The file protocol has no `tls_verify`: FFmpeg hands it back unused, and an ignored
        // `tls_verify` would be an unverified connection, so the open fails.
        let r = Muxer::open(
            out.to_str().unwrap(),
            "mpegts",
            opts,
            ff::Dictionary::new(),
            &setup,
            Some(IoWatch::new(std::time::Duration::from_secs(5))),
        );
        match r {
            Err(e) => assert!(e.contains("tls_verify"), "{e}"),
            Ok(_) => panic!("an ignored option was accepted"),
        }
    }
}
