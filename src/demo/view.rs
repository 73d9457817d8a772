//! The demo's terminal view: a small frame redrawn in place on a TTY, with
//! events scrolling above it; plain appended lines otherwise (CI logs).
use super::load::Rates;
use std::io::Write;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Redraw in place with colours.
    Tty,
    /// Append: events as they come and a status line every second.
    Lines,
    /// Print nothing (tests).
    Quiet,
}

impl Output {
    pub fn detect() -> Output {
        use std::io::IsTerminal;
        if std::io::stdout().is_terminal() {
            Output::Tty
        } else {
            Output::Lines
        }
    }
}

/// Everything one frame shows.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    pub elapsed: Duration,
    pub phase: String,
    pub weight: Option<f64>,
    pub step: Option<(u64, u64)>,
    pub stable: Rates,
    pub canary: Rates,
    pub verdict: String,
    pub canary_fault: f64,
}

pub struct View {
    out: Output,
    /// Colours on a TTY unless `NO_COLOR` is set (non-empty).
    colour: bool,
    drawn: usize,
    frames: u64,
}

const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const CYAN: &str = "\x1b[36m";
const RESET: &str = "\x1b[0m";

impl View {
    pub fn new(out: Output) -> View {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        View {
            out,
            colour: out == Output::Tty && !no_color,
            drawn: 0,
            frames: 0,
        }
    }

    fn c<'a>(&self, code: &'a str) -> &'a str {
        if self.colour {
            code
        } else {
            ""
        }
    }

    /// Removes the frame so the next lines print where it was.
    fn erase(&mut self, w: &mut impl Write) {
        if self.out == Output::Tty && self.drawn > 0 {
            let _ = write!(w, "\x1b[{}A\x1b[J", self.drawn);
            self.drawn = 0;
        }
    }

    /// A line that stays (above the frame on a TTY).
    pub fn event(&mut self, elapsed: Duration, kind: &str, text: &str) {
        if self.out == Output::Quiet {
            return;
        }
        let mut w = std::io::stdout().lock();
        self.erase(&mut w);
        let colour = match kind {
            "aborted" | "abort" | "fault" => RED,
            "promoted" | "step" | "weight" => GREEN,
            "demo" => CYAN,
            _ => YELLOW,
        };
        let _ = writeln!(
            w,
            "{}{:>6.1}s{} {}{:<10}{} {}",
            self.c(DIM),
            elapsed.as_secs_f64(),
            self.c(RESET),
            self.c(colour),
            kind,
            self.c(RESET),
            text
        );
        let _ = w.flush();
    }

    /// Leaves the last frame on screen: later lines print below it.
    pub fn freeze(&mut self) {
        self.drawn = 0;
    }

    /// Plain text (URLs, the summary), never redrawn over.
    pub fn say(&mut self, text: &str) {
        if self.out == Output::Quiet {
            return;
        }
        let mut w = std::io::stdout().lock();
        self.erase(&mut w);
        let _ = writeln!(w, "{text}");
        let _ = w.flush();
    }

    /// Called ~4×/s: redraws on a TTY, prints one line per second otherwise.
    pub fn frame(&mut self, f: &Frame) {
        self.frames += 1;
        match self.out {
            Output::Quiet => {}
            Output::Lines => {
                if self.frames % 4 == 1 {
                    println!(
                        "{:>6.1}s status     {} weight {} | stable {} | canary {} | {}",
                        f.elapsed.as_secs_f64(),
                        f.phase,
                        weight(f.weight),
                        rates_line(&f.stable),
                        rates_line(&f.canary),
                        f.verdict
                    );
                }
            }
            Output::Tty => {
                let mut w = std::io::stdout().lock();
                self.erase(&mut w);
                let lines = self.render(f);
                for l in &lines {
                    let _ = writeln!(w, "{l}");
                }
                self.drawn = lines.len();
                let _ = w.flush();
            }
        }
    }

    fn render(&self, f: &Frame) -> Vec<String> {
        let phase_colour = match f.phase.as_str() {
            "Degraded" => RED,
            "Healthy" => GREEN,
            "Paused" => YELLOW,
            _ => CYAN,
        };
        let filled = (f.weight.unwrap_or(0.0) / 5.0).round().clamp(0.0, 20.0) as usize;
        let bar = format!("{}{}", "█".repeat(filled), "░".repeat(20 - filled));
        let step = match f.step {
            Some((i, n)) => format!("step {}/{}", (i + 1).min(n), n),
            None => String::new(),
        };
        let row = |name: &str, r: &Rates, fault: Option<f64>| {
            let err = r.error_pct.unwrap_or(0.0);
            let err_colour = if err >= 1.0 { RED } else { GREEN };
            format!(
                "  {:<8} {:>7.0} {}{:>8}{} {:>9}   {}",
                name,
                r.rps,
                self.c(err_colour),
                pct(r.error_pct),
                self.c(RESET),
                ms(r.p99),
                match fault {
                    Some(x) if x > 0.0 => format!(
                        "{}fault injected: {:.0}% → 500{}",
                        self.c(RED),
                        x * 100.0,
                        self.c(RESET)
                    ),
                    _ => String::new(),
                }
            )
        };
        let mut lines = vec![
            String::new(),
            format!(
                "  {}{}{:<11}{}  canary weight {}{:>6}{}  {}{}{}  {}",
                self.c(BOLD),
                self.c(phase_colour),
                f.phase,
                self.c(RESET),
                self.c(BOLD),
                weight(f.weight),
                self.c(RESET),
                self.c(YELLOW),
                bar,
                self.c(RESET),
                step
            ),
            format!(
                "  {}version    req/s   errors   p99 (1s){}",
                self.c(DIM),
                self.c(RESET)
            ),
            row("stable", &f.stable, None),
            row("canary", &f.canary, Some(f.canary_fault)),
        ];
        // One line per limit, cut short so a line never wraps (the redraw
        // counts lines).
        for (i, part) in f.verdict.split(" · ").enumerate() {
            let indent = if i == 0 { "  " } else { "    " };
            let text: String = part.chars().take(96).collect();
            lines.push(format!("{indent}{}{text}{}", self.c(DIM), self.c(RESET)));
        }
        lines.push(format!(
            "  {}t = {:.1}s{}",
            self.c(DIM),
            f.elapsed.as_secs_f64(),
            self.c(RESET)
        ));
        lines
    }
}

fn rates_line(r: &Rates) -> String {
    format!(
        "{:.0} req/s {} err p99 {}",
        r.rps,
        pct(r.error_pct),
        ms(r.p99)
    )
}

fn weight(w: Option<f64>) -> String {
    w.map_or_else(|| "-".into(), |w| format!("{w}%"))
}

fn pct(p: Option<f64>) -> String {
    p.map_or_else(|| "-".into(), |p| format!("{p:.1}%"))
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".into(),
        |d| format!("{:.1}ms", d.as_secs_f64() * 1000.0),
    )
}
