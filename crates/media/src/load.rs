//! The encoder's load and `--preset auto`: a sans-io controller fed, after every video frame,
//! the time the encoder thread spent since the previous one, the frame period and the frames
//! dropped so far because its queue was full. It says how loaded the encoder is and, when
//! adaptive, which rung of the preset ladder to move to. No clock of its own (`now_ns` comes in),
//! so it is tested on simulated time.
//!
//! Load is the encoder thread's busy time per encoded frame over the frame period, measured
//! over windows of about a second: 100 % means it takes exactly one period per frame. Measured
//! per *encoded* frame, it goes above 100 % when frames are dropped (time spent / frames that
//! made it), which is what an overloaded encoder looks like.

/// x264 presets `--preset auto` moves between, fastest first; it starts at the last (the
/// default `veryfast`) and never goes slower. Every rung gets the same header-shaping x264
/// parameters (`video::AUTO_PINNED`), so a switch keeps the stream's SPS/PPS.
pub const AUTO_LADDER: &[&str] = &["ultrafast", "superfast", "veryfast"];

/// The controller's thresholds and times.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadPolicy {
    /// Length of one measurement window.
    pub window_ns: u64,
    /// A window above this load (or with any drop) steps to a faster preset.
    pub down_load: f64,
    /// Loads under this, sustained for `up_hold_ns`, step back to the slower preset.
    pub up_load: f64,
    /// How long the load must stay under `up_load` before stepping up (doubled after a step up
    /// that had to be undone, so it does not flap).
    pub up_hold_ns: u64,
    /// The longest `up_hold_ns` grows to.
    pub max_up_hold_ns: u64,
    /// A step down this soon after a step up counts as a failed step up.
    pub flap_window_ns: u64,
    /// After a switch, windows this long are measured but not acted on (the reopen's own cost
    /// and the queue it built up are not the new preset's load).
    pub settle_ns: u64,
    /// A window with drops, or above this load, counts as overloaded for the status line.
    pub overloaded_load: f64,
}

impl Default for LoadPolicy {
    fn default() -> Self {
        Self {
            window_ns: 1_000_000_000,
            down_load: 0.9,
            up_load: 0.5,
            up_hold_ns: 10_000_000_000,
            max_up_hold_ns: 160_000_000_000,
            flap_window_ns: 30_000_000_000,
            settle_ns: 1_500_000_000,
            overloaded_load: 1.0,
        }
    }
}

/// A move the controller asks for; the caller applies it and reports back with
/// [`LoadController::switched`] or [`LoadController::refused`].
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Rung to move to (index into the ladder).
    pub to: usize,
    /// The load of the window that decided it (1.0 = 100 %).
    pub load: f64,
    /// Frames dropped in that window.
    pub dropped: u64,
    /// Why: true for overload (to a faster rung), false for headroom (to a slower one).
    pub overloaded: bool,
}

/// The encoder's load over the last window and the controller's position.
#[derive(Debug)]
pub struct LoadController {
    policy: LoadPolicy,
    rungs: usize,
    rung: usize,
    adaptive: bool,
    window_start: Option<u64>,
    busy_ns: u64,
    frame_ns: u64,
    drops_at_start: u64,
    load: f64,
    overloaded: bool,
    under_since: Option<u64>,
    settle_until: u64,
    up_hold_ns: u64,
    last_up_at: Option<u64>,
}

impl LoadController {
    /// A controller at `rung` of a ladder of `rungs`; only an `adaptive` one proposes steps.
    pub fn new(policy: LoadPolicy, rungs: usize, rung: usize, adaptive: bool) -> Self {
        Self {
            policy,
            rungs: rungs.max(1),
            rung: rung.min(rungs.saturating_sub(1)),
            adaptive,
            window_start: None,
            busy_ns: 0,
            frame_ns: 0,
            drops_at_start: 0,
            load: 0.0,
            overloaded: false,
            under_since: None,
            settle_until: 0,
            up_hold_ns: policy.up_hold_ns,
            last_up_at: None,
        }
    }

    /// The load of the last complete window (1.0 = one frame period per frame).
    pub fn load(&self) -> f64 {
        self.load
    }

    /// Whether the last window dropped frames or ran above `overloaded_load`.
    pub fn overloaded(&self) -> bool {
        self.overloaded
    }

    /// The current rung.
    pub fn rung(&self) -> usize {
        self.rung
    }

    /// One encoded video frame: `busy_ns` spent by the encoder thread since the previous one
    /// (audio included), the frame period, and the total of frames dropped so far. Returns a
    /// step to take when a window closes and calls for one.
    pub fn record(
        &mut self,
        now_ns: u64,
        busy_ns: u64,
        period_ns: u64,
        dropped_total: u64,
    ) -> Option<Step> {
        let start = *self.window_start.get_or_insert_with(|| {
            self.drops_at_start = dropped_total;
            now_ns
        });
        self.busy_ns = self.busy_ns.saturating_add(busy_ns);
        self.frame_ns = self.frame_ns.saturating_add(period_ns);
        if now_ns.saturating_sub(start) < self.policy.window_ns || self.frame_ns == 0 {
            return None;
        }
        let load = self.busy_ns as f64 / self.frame_ns as f64;
        let dropped = dropped_total.saturating_sub(self.drops_at_start);
        self.load = load;
        self.overloaded = dropped > 0 || load > self.policy.overloaded_load;
        self.window_start = Some(now_ns);
        self.drops_at_start = dropped_total;
        self.busy_ns = 0;
        self.frame_ns = 0;
        if !self.adaptive || now_ns < self.settle_until {
            return None;
        }
        if (load > self.policy.down_load || dropped > 0) && self.rung > 0 {
            self.under_since = None;
            return Some(Step {
                to: self.rung - 1,
                load,
                dropped,
                overloaded: true,
            });
        }
        if load < self.policy.up_load && self.rung + 1 < self.rungs && dropped == 0 {
            let since = *self.under_since.get_or_insert(start);
            if now_ns.saturating_sub(since) >= self.up_hold_ns {
                return Some(Step {
                    to: self.rung + 1,
                    load,
                    dropped,
                    overloaded: false,
                });
            }
        } else {
            self.under_since = None;
        }
        None
    }

    /// The caller moved to `rung` at `now_ns`.
    pub fn switched(&mut self, now_ns: u64, rung: usize) {
        let up = rung > self.rung;
        if !up
            && self
                .last_up_at
                .is_some_and(|t| now_ns.saturating_sub(t) < self.policy.flap_window_ns)
        {
            // The slower preset did not hold: wait twice as long before trying it again.
            self.up_hold_ns = (self.up_hold_ns.saturating_mul(2)).min(self.policy.max_up_hold_ns);
        }
        self.last_up_at = up.then_some(now_ns);
        self.rung = rung.min(self.rungs - 1);
        self.under_since = None;
        self.settle_until = now_ns.saturating_add(self.policy.settle_ns);
        // The next window measures the new preset alone.
        self.window_start = None;
        self.busy_ns = 0;
        self.frame_ns = 0;
    }

    /// The caller could not move (the new encoder did not open, or its headers differ): stop
    /// proposing steps for the rest of the run.
    pub fn refused(&mut self) {
        self.adaptive = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const PERIOD: u64 = 16_666_667;

    /// Feeds `secs` of 60 fps frames costing `cost` periods each; drops counted by the caller.
    struct Sim {
        c: LoadController,
        now: u64,
        dropped: u64,
        steps: Vec<(u64, Step)>,
    }

    impl Sim {
        fn new(rung: usize, adaptive: bool) -> Self {
            Self {
                c: LoadController::new(LoadPolicy::default(), AUTO_LADDER.len(), rung, adaptive),
                now: 0,
                dropped: 0,
                steps: Vec::new(),
            }
        }

        /// Runs `secs` with a per-rung cost (in frame periods); above 1.0 frames drop.
        fn run(&mut self, secs: f64, cost: &dyn Fn(usize) -> f64) {
            let end = self.now + (secs * 1e9) as u64;
            while self.now < end {
                let c = cost(self.c.rung());
                // An encoder slower than real time encodes 1/c of the frames; the rest drop.
                let step = (PERIOD as f64 * c.max(1.0)) as u64;
                if c > 1.0 {
                    self.dropped += 1;
                }
                self.now += step;
                if let Some(s) =
                    self.c
                        .record(self.now, (PERIOD as f64 * c) as u64, PERIOD, self.dropped)
                {
                    self.c.switched(self.now, s.to);
                    self.steps.push((self.now, s));
                }
            }
        }
    }

    #[test]
    fn steps_down_on_overload_within_about_a_second() {
        let mut s = Sim::new(2, true);
        // veryfast costs 1.2 periods, superfast 0.7.
        s.run(5.0, &|r| [0.4, 0.7, 1.2][r]);
        assert_eq!(s.steps.len(), 1, "{:?}", s.steps);
        let (t, step) = &s.steps[0];
        assert_eq!(step.to, 1);
        assert!(step.overloaded && step.load > 1.0);
        assert!(*t <= 1_300 * MS, "stepped at {t}");
        assert_eq!(s.c.rung(), 1);
        assert!(!s.c.overloaded(), "superfast keeps up");
    }

    #[test]
    fn steps_down_on_drops_even_under_the_load_threshold() {
        let mut c = LoadController::new(LoadPolicy::default(), 3, 2, true);
        let mut now = 0;
        let mut out = None;
        for i in 0..70u64 {
            now += PERIOD;
            // 50 % load, but one frame dropped at frame 30 (a burst).
            let dropped = u64::from(i >= 30);
            out = out.or(c.record(now, PERIOD / 2, PERIOD, dropped));
        }
        let s = out.expect("a drop steps down");
        assert_eq!((s.to, s.dropped), (1, 1));
        assert!(c.overloaded());
    }

    #[test]
    fn steps_back_up_after_sustained_headroom_only() {
        let mut s = Sim::new(2, true);
        // Overloaded at first (a busy scene), then everything is cheap.
        s.run(3.0, &|r| [0.3, 0.6, 1.3][r]);
        assert_eq!(s.c.rung(), 1);
        s.run(8.0, &|r| [0.2, 0.3, 0.5][r]);
        assert_eq!(s.c.rung(), 1, "not before ~10 s of headroom");
        s.run(5.0, &|r| [0.2, 0.3, 0.5][r]);
        assert_eq!(s.c.rung(), 2, "{:?}", s.steps);
        let (t_up, up) = s.steps.last().unwrap();
        assert!(!up.overloaded);
        assert!(*t_up - s.steps[0].0 >= 10_000 * MS);
    }

    #[test]
    fn load_in_the_middle_band_holds() {
        let mut s = Sim::new(1, true);
        // 70 %: not overloaded, not enough headroom to step up.
        s.run(60.0, &|_| 0.7);
        assert!(s.steps.is_empty(), "{:?}", s.steps);
        assert!((s.c.load() - 0.7).abs() < 0.01);
    }

    #[test]
    fn does_not_flap_between_two_rungs() {
        let mut s = Sim::new(2, true);
        // superfast has headroom (45 %) but veryfast overloads (110 %): every step up fails.
        s.run(300.0, &|r| [0.3, 0.45, 1.1][r]);
        let ups = s.steps.iter().filter(|(_, st)| !st.overloaded).count();
        // Hold times 10, 20, 40, 80, 160 s: at most 4 tries in 300 s, not 25.
        assert!((1..=4).contains(&ups), "{ups} step ups: {:?}", s.steps);
        let gaps: Vec<u64> = s
            .steps
            .windows(2)
            .filter(|w| !w[1].1.overloaded)
            .map(|w| w[1].0 - w[0].0)
            .collect();
        assert!(gaps.windows(2).all(|g| g[1] > g[0]), "waits grow: {gaps:?}");
    }

    #[test]
    fn fixed_preset_says_overload_but_never_steps() {
        let mut s = Sim::new(0, false);
        s.run(10.0, &|_| 1.5);
        assert!(s.steps.is_empty());
        assert!(s.c.overloaded());
        assert!(s.c.load() > 1.4);
    }

    #[test]
    fn bottom_rung_stays_and_refused_stops_adapting() {
        let mut s = Sim::new(0, true);
        s.run(5.0, &|_| 1.5);
        assert!(s.steps.is_empty());
        let mut c = LoadController::new(LoadPolicy::default(), 3, 2, true);
        c.refused();
        let mut now = 0;
        for _ in 0..200 {
            now += PERIOD;
            assert!(c.record(now, 2 * PERIOD, PERIOD, 0).is_none());
        }
        assert!(c.overloaded());
    }

    #[test]
    fn settles_after_a_switch() {
        let mut c = LoadController::new(LoadPolicy::default(), 3, 2, true);
        c.switched(0, 1);
        let mut now = 0;
        // The first window after the switch is over budget (the reopen): not acted on.
        for i in 0..80u64 {
            now += PERIOD;
            assert!(c.record(now, 2 * PERIOD, PERIOD, 5 + i).is_none());
        }
        // Still overloaded a second later: now it steps.
        let step = (0..80u64).find_map(|i| {
            now += PERIOD;
            c.record(now, 2 * PERIOD, PERIOD, 100 + i)
        });
        assert_eq!(step.map(|s| s.to), Some(0));
    }
}
