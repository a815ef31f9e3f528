//! The one-line status the host prints once a second.

use std::fmt;
use std::time::Duration;

use crosscast_media::{EncoderStats, OutputKind, OutputState};

/// A snapshot of the stream's health.
#[derive(Debug, Clone, Default)]
pub struct LiveStatus {
    /// Output time so far.
    pub elapsed: Duration,
    /// Output frames per second over the last interval.
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

impl fmt::Display for LiveStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.elapsed.as_secs();
        write!(
            f,
            "{:02}:{:02}:{:02} out {:.1} fps | game {} | {:.0} kb/s | dropped {} repeated {} skipped {} | A/V offset {:+.1} ms | audio lag {:.0} ms",
            t / 3600,
            t / 60 % 60,
            t % 60,
            self.out_fps,
            if self.game_connected { format!("{:.1} fps", self.game_fps) } else { "gone".into() },
            self.bitrate_kbps,
            self.dropped,
            self.repeated,
            self.skipped,
            self.av_offset_ms,
            self.audio_lag_ms,
        )?;
        if let Some(e) = &self.encoder {
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
