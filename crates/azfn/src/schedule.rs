//! Schedules as the Functions timer trigger reads them, which durable schedules
//! ([`crate::durable::schedules`]) share: six-field NCRONTAB
//! (`{second} {minute} {hour} {day} {month} {day-of-week}`) or a `hh:mm:ss` interval.
//!
//! Fields take `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, lists `a,b`, and month and day
//! names (`JAN`, `MON`). Day-of-week runs 0 (Sunday) to 6. As in the NCrontab library the host uses,
//! a time matches when every field matches (day of month and day of week together). Times are UTC,
//! or the wall clock of a time zone (`WEBSITE_TIME_ZONE` or `TZ`, an IANA name) with
//! [`Schedule::next_after_in`].

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// An NCRONTAB expression.
    Cron(Box<Cron>),
    /// A fixed interval (`hh:mm:ss`).
    Every(std::time::Duration),
}

/// The sets of values each NCRONTAB field allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    seconds: [bool; 60],
    minutes: [bool; 60],
    hours: [bool; 24],
    days: [bool; 32],
    months: [bool; 13],
    weekdays: [bool; 7],
}

const MONTHS: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn field<const N: usize>(
    text: &str,
    name: &str,
    min: usize,
    max: usize,
    names: &[&str],
    offset: usize,
) -> Result<[bool; N], String> {
    let value = |s: &str| -> Result<usize, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(i + offset);
        }
        let v: usize = s.parse().map_err(|_| format!("{name}: {s:?} is not a number"))?;
        if v < min || v > max {
            return Err(format!("{name}: {v} is outside {min}-{max}"));
        }
        Ok(v)
    };
    let mut set = [false; N];
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<usize>().ok().filter(|s| *s > 0).ok_or_else(|| format!("{name}: bad step in {part:?}"))?,
            ),
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let v = value(range)?;
            (v, if step > 1 { max } else { v })
        };
        if lo > hi {
            return Err(format!("{name}: range {range:?} runs backwards"));
        }
        for v in (lo..=hi).step_by(step) {
            set[v] = true;
        }
    }
    Ok(set)
}

impl Schedule {
    /// Whether every field from the minutes up allows every value (`X * * * * *`): only such a
    /// schedule can fire more often than once a minute.
    pub fn wild_from_minutes(&self) -> bool {
        match self {
            Self::Cron(c) => {
                c.minutes.iter().all(|&b| b)
                    && c.hours.iter().all(|&b| b)
                    && c.days[1..].iter().all(|&b| b)
                    && c.months[1..].iter().all(|&b| b)
                    && c.weekdays.iter().all(|&b| b)
            }
            Self::Every(_) => false,
        }
    }

    /// Parses a function.json `schedule`.
    ///
    /// ```
    /// use azfn::schedule::Schedule;
    /// let every_five = Schedule::parse("0 */5 * * * *").unwrap();
    /// let t = "2024-05-01T10:02:30Z".parse().unwrap();
    /// assert_eq!(every_five.next_after(t).unwrap().to_rfc3339(), "2024-05-01T10:05:00+00:00");
    /// assert!(Schedule::parse("*/5 * * * *").is_err(), "five fields is Unix cron, not NCRONTAB");
    /// ```
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let parts: Vec<&str> = text.split_whitespace().collect();
        if parts.len() == 1 && text.contains(':') {
            let nums: Vec<u64> = text
                .split(':')
                .map(|p| p.parse().map_err(|_| format!("{text:?} is not hh:mm:ss")))
                .collect::<Result<_, _>>()?;
            let [h, m, s] = nums[..] else { return Err(format!("{text:?} is not hh:mm:ss")) };
            let every = std::time::Duration::from_secs(h * 3600 + m * 60 + s);
            if every.is_zero() {
                return Err("an interval of 00:00:00 never fires".to_owned());
            }
            return Ok(Self::Every(every));
        }
        if parts.len() != 6 {
            return Err(format!(
                "{text:?} has {} fields; the timer trigger needs six: {{second}} {{minute}} {{hour}} {{day}} {{month}} {{day-of-week}}",
                parts.len()
            ));
        }
        let weekdays: [bool; 8] = field(parts[5], "day-of-week", 0, 7, &WEEKDAYS, 0)?;
        let mut wd = [false; 7];
        wd.copy_from_slice(&weekdays[..7]);
        wd[0] |= weekdays[7]; // 7 is also Sunday
        Ok(Self::Cron(Box::new(Cron {
            seconds: field(parts[0], "second", 0, 59, &[], 0)?,
            minutes: field(parts[1], "minute", 0, 59, &[], 0)?,
            hours: field(parts[2], "hour", 0, 23, &[], 0)?,
            days: field(parts[3], "day", 1, 31, &[], 0)?,
            months: field(parts[4], "month", 1, 12, &MONTHS, 1)?,
            weekdays: wd,
        })))
    }

    /// The first occurrence strictly after `t` (within five years), for a cron schedule; for an
    /// interval, `t` plus the interval.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Every(d) => Some(t + Duration::from_std(*d).ok()?),
            Self::Cron(c) => c.next_naive_after(t.naive_utc()).map(|n| n.and_utc()),
        }
    }

    /// As [`next_after`](Self::next_after), with the cron fields read on the wall clock of `tz`.
    /// A wall-clock time that a daylight-saving change skips does not occur; one that it repeats
    /// occurs once, the first time.
    pub fn next_after_in<Z: TimeZone>(&self, t: DateTime<Utc>, tz: &Z) -> Option<DateTime<Utc>> {
        let cron = match self {
            Self::Every(_) => return self.next_after(t),
            Self::Cron(c) => c,
        };
        let mut local = t.with_timezone(tz).naive_local();
        loop {
            let candidate = cron.next_naive_after(local)?;
            match tz.from_local_datetime(&candidate) {
                LocalResult::Single(x) | LocalResult::Ambiguous(x, _) => return Some(x.with_timezone(&Utc)),
                LocalResult::None => local = candidate,
            }
        }
    }
}

impl Cron {
    /// The first matching wall-clock time strictly after `t`, within five years.
    fn next_naive_after(&self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        let midnight = |y: i32, m: u32, d: u32| NaiveDate::from_ymd_opt(y, m, d)?.and_hms_opt(0, 0, 0);
        let mut t = t.with_nanosecond(0)? + Duration::seconds(1);
        let limit = t + Duration::days(5 * 366);
        while t < limit {
            if !self.months[t.month() as usize] {
                let (y, m) = if t.month() == 12 { (t.year() + 1, 1) } else { (t.year(), t.month() + 1) };
                t = midnight(y, m, 1)?;
                continue;
            }
            if !self.days[t.day() as usize] || !self.weekdays[t.weekday().num_days_from_sunday() as usize] {
                t = (t + Duration::days(1)).with_hour(0)?.with_minute(0)?.with_second(0)?;
                continue;
            }
            if !self.hours[t.hour() as usize] {
                t = (t + Duration::hours(1)).with_minute(0)?.with_second(0)?;
                continue;
            }
            if !self.minutes[t.minute() as usize] {
                t = (t + Duration::minutes(1)).with_second(0)?;
                continue;
            }
            if !self.seconds[t.second() as usize] {
                t += Duration::seconds(1);
                continue;
            }
            return Some(t);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn next(expr: &str, after: &str) -> String {
        Schedule::parse(expr).unwrap().next_after(at(after)).unwrap().to_rfc3339()
    }

    #[test]
    fn common_schedules() {
        assert_eq!(next("0 */5 * * * *", "2024-05-01T10:05:00Z"), "2024-05-01T10:10:00+00:00");
        assert_eq!(next("*/10 * * * * *", "2024-05-01T10:05:55Z"), "2024-05-01T10:06:00+00:00");
        assert_eq!(next("0 30 9 * * 1-5", "2024-05-03T09:30:00Z"), "2024-05-06T09:30:00+00:00"); // Fri -> Mon
        assert_eq!(next("0 0 0 1 JAN *", "2024-05-01T00:00:00Z"), "2025-01-01T00:00:00+00:00");
        assert_eq!(next("0 0 12 29 2 *", "2024-03-01T00:00:00Z"), "2028-02-29T12:00:00+00:00");
        assert_eq!(next("5,10 0 * * * SUN", "2024-05-05T00:00:05Z"), "2024-05-05T00:00:10+00:00");
        assert_eq!(next("0 0 */6 * * *", "2024-12-31T23:00:00Z"), "2025-01-01T00:00:00+00:00");
    }

    #[test]
    fn intervals() {
        assert_eq!(Schedule::parse("00:05:00").unwrap(), Schedule::Every(std::time::Duration::from_secs(300)));
        assert_eq!(next("01:00:00", "2024-05-01T10:00:00Z"), "2024-05-01T11:00:00+00:00");
        assert!(Schedule::parse("00:00:00").is_err());
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        assert!(Schedule::parse("* * * * *").unwrap_err().contains("needs six"));
        assert!(Schedule::parse("60 * * * * *").unwrap_err().contains("second: 60 is outside 0-59"));
        assert!(Schedule::parse("0 5-1 * * * *").unwrap_err().contains("backwards"));
        assert!(Schedule::parse("0 */0 * * * *").unwrap_err().contains("bad step"));
        assert!(Schedule::parse("0 0 0 * FOO *").unwrap_err().contains("month"));
    }

    #[test]
    fn schedules_in_a_time_zone_follow_its_wall_clock() {
        let paris: chrono_tz::Tz = "Europe/Paris".parse().unwrap();
        let s = Schedule::parse("0 30 9 * * *").unwrap();
        // 09:30 in Paris is 08:30 UTC in winter and 07:30 UTC in summer.
        assert_eq!(
            s.next_after_in(at("2024-01-10T00:00:00Z"), &paris).unwrap().to_rfc3339(),
            "2024-01-10T08:30:00+00:00"
        );
        assert_eq!(
            s.next_after_in(at("2024-07-10T00:00:00Z"), &paris).unwrap().to_rfc3339(),
            "2024-07-10T07:30:00+00:00"
        );
        // 02:30 does not exist on 2024-03-31 in Paris: the next one is the day after.
        let skipped = Schedule::parse("0 30 2 * * *").unwrap();
        assert_eq!(
            skipped.next_after_in(at("2024-03-30T12:00:00Z"), &paris).unwrap().to_rfc3339(),
            "2024-04-01T00:30:00+00:00"
        );
    }
}
