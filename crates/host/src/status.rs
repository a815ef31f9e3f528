//! The one-line status the host prints once a second.

use std::fmt;
use std::time::Duration;

use crosscast_media::{EncoderStats, OutputKind, OutputState};

/// A snapshot of the stream's health.
#[derive(Debug, Clone, Default)]
pub struct LiveStatus {
    /// Output time so far.
    pub elapsed: Duration,
    /// Output frames per second over the last interval: the frames the encoder encoded when
    /// encoding (an overloaded encoder's real rate), else the clock's.
    pub out_fps: f64,
    /// Frames per second the game queued over the last interval.
    pub game_fps: f64,
    /// Encoded bitrate over the last interval.
    pub bitrate_kbps: f64,
    /// Game frames replaced before the host took them.
    pub dropped: u64,
    /// Output frames that repeated the previous one.
    pub repeated: u64,
    /// Game frames never shown.
    pub skipped: u64,
    /// Sync error of the last output frame: the shown game frame's time on the stream timeline
    /// minus the frame's slot (audio is placed by its own timestamps, so this is A/V offset).
    pub av_offset_ms: f64,
    /// How far audio trails video in the encoder input (buffering, not sync error).
    pub audio_lag_ms: f64,
    /// Whether a game is connected.
    pub game_connected: bool,
    /// Encoder and outputs, when encoding.
    pub encoder: Option<EncoderStats>,
}

fn state_word(s: &OutputState) -> String {
    match s {
        OutputState::Connecting => "connecting".into(),
        OutputState::Live => "live".into(),
        OutputState::Reconnecting { attempt, .. } => format!("reconnecting#{attempt}"),
        OutputState::Recording => "rec".into(),
        OutputState::Finished => "done".into(),
        OutputState::Failed(r) => format!("failed({r})"),
    }
}

impl LiveStatus {
    /// ` | ENCODER OVERLOADED (52/60 fps): <remedy>` while the encoder drops frames or runs over
    /// its frame budget, else nothing: said where the frame rate is, like OBS's warning.
    fn overload_warning(&self) -> String {
        match &self.encoder {
            Some(e) if e.overloaded => {
                let remedy = match e.preset.as_deref() {
                    // Nothing faster to ask x264 for; a hardware encoder has no preset.
                    Some("ultrafast") | None => "lower --size or --fps",
                    Some(_) => "lower --size or --fps, or a faster --preset",
                };
                format!(
                    " | ENCODER OVERLOADED ({:.0}/{:.0} fps): {remedy}",
                    self.out_fps, e.target_fps
                )
            }
            _ => String::new(),
        }
    }
}

impl fmt::Display for LiveStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.elapsed.as_secs();
        write!(
            f,
            "{:02}:{:02}:{:02} out {:.1} fps{} | game {} | {:.0} kb/s | dropped {} repeated {} skipped {} | A/V offset {:+.1} ms | audio lag {:.0} ms",
            t / 3600,
            t / 60 % 60,
            t % 60,
            self.out_fps,
            self.overload_warning(),
            if self.game_connected { format!("{:.1} fps", self.game_fps) } else { "gone".into() },
            self.bitrate_kbps,
            self.dropped,
            self.repeated,
            self.skipped,
            self.av_offset_ms,
            self.audio_lag_ms,
        )?;
        if let Some(e) = &self.encoder {
            write!(f, " | enc {}", e.video_codec)?;
            if let Some(p) = &e.preset {
                write!(f, " {p}")?;
            }
            write!(f, " {:.0} %", e.encode_load * 100.0)?;
            for o in &e.outputs {
                write!(f, " | {} {}", o.name, state_word(&o.state))?;
                if matches!(o.kind, OutputKind::Rtmp | OutputKind::Srt) && o.backlog_ms >= 500 {
                    write!(f, " ({:.1} s queued)", o.backlog_ms as f64 / 1000.0)?;
                }
            }
            // Adaptive bitrate: what the network outputs get now, against the full rate.
            if let Some(live) = e.live_bitrate_kbps {
                write!(f, " | live bitrate {live}/{} kb/s", e.video_bitrate_kbps)?;
                if e.second_encode {
                    write!(f, " (recordings at full rate on a 2nd encode)")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(overloaded: bool, preset: Option<&str>) -> EncoderStats {
        EncoderStats {
            video_frames_encoded: 0,
            audio_frames_encoded: 0,
            bytes_written: 0,
            encode_fps: 52.0,
            video_frames_dropped: 8,
            audio_blocks_dropped: 0,
            audio_gap_samples: 0,
            audio_overlap_samples: 0,
            outputs: Vec::new(),
            video_codec: "libx264".into(),
            preset: preset.map(str::to_owned),
            encode_load: 1.12,
            overloaded,
            target_fps: 60.0,
            live_bitrate_kbps: None,
            video_bitrate_kbps: 1500,
            second_encode: false,
        }
    }

    #[test]
    fn adaptive_bitrate_shows_the_live_rate_and_a_backed_up_queue() {
        let mut e = stats(false, Some("veryfast"));
        e.outputs.push(crosscast_media::OutputStats {
            name: "rtmp://ingest/live/***".into(),
            kind: OutputKind::Rtmp,
            state: OutputState::Live,
            bytes: 0,
            packets_dropped: 0,
            reconnects: 0,
            backlog_ms: 1200,
        });
        e.live_bitrate_kbps = Some(583);
        e.second_encode = true;
        let line = LiveStatus {
            encoder: Some(e.clone()),
            ..LiveStatus::default()
        }
        .to_string();
        assert!(
            line.contains("rtmp://ingest/live/*** live (1.2 s queued) | live bitrate 583/1500 kb/s (recordings at full rate on a 2nd encode)"),
            "{line}"
        );
        // A queue under half a second is normal and not shown.
        e.outputs[0].backlog_ms = 300;
        e.second_encode = false;
        let line = LiveStatus {
            encoder: Some(e),
            ..LiveStatus::default()
        }
        .to_string();
        assert!(
            line.ends_with("rtmp://ingest/live/*** live | live bitrate 583/1500 kb/s"),
            "{line}"
        );
    }

    #[test]
    fn overload_is_said_with_the_encoded_rate_and_the_remedy() {
        let mut s = LiveStatus {
            out_fps: 52.0,
            encoder: Some(stats(true, Some("veryfast"))),
            ..LiveStatus::default()
        };
        let line = s.to_string();
        assert!(
            line.contains("out 52.0 fps | ENCODER OVERLOADED (52/60 fps): lower --size or --fps, or a faster --preset"),
            "{line}"
        );
        assert!(line.contains("enc libx264 veryfast 112 %"), "{line}");
        s.encoder = Some(stats(true, Some("ultrafast")));
        assert!(s
            .to_string()
            .contains("(52/60 fps): lower --size or --fps |"));
        s.encoder = Some(stats(false, Some("veryfast")));
        assert!(!s.to_string().contains("OVERLOADED"));
    }
}
