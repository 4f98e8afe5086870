//! MQTT topic names and topic filters.

use std::fmt;

use vouch_types::DeviceId;

/// The longest topic accepted, in bytes (MQTT's UTF-8 string limit).
pub const MAX_TOPIC_BYTES: usize = 65_535;

/// Why a topic name, filter or template is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// Empty.
    #[error("a topic must not be empty")]
    Empty,
    /// Longer than MQTT allows.
    #[error("a topic must be at most {MAX_TOPIC_BYTES} bytes")]
    TooLong,
    /// Contains U+0000 (forbidden by MQTT).
    #[error("a topic must not contain U+0000")]
    Nul,
    /// A topic name (what is published) contains `+` or `#`.
    #[error("a topic name must not contain wildcards (`+`, `#`): `{0}`")]
    WildcardInName(String),
    /// `#` is not alone in the last level, or `+` is not alone in its level.
    #[error("misplaced wildcard in `{0}`: `#` must be the whole last level, `+` a whole level")]
    MisplacedWildcard(String),
    /// A template names a variable Vouch does not know.
    #[error("unknown variable `${{{0}}}` in a topic template (known: device.id)")]
    UnknownVariable(String),
}

fn check_common(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > MAX_TOPIC_BYTES {
        return Err(TopicError::TooLong);
    }
    if s.contains('\0') {
        return Err(TopicError::Nul);
    }
    Ok(())
}

/// A topic name: what a PUBLISH carries. No wildcards.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(String);

impl TopicName {
    /// A topic name, if valid.
    pub fn new(s: &str) -> Result<Self, TopicError> {
        check_common(s)?;
        if s.contains(['+', '#']) {
            return Err(TopicError::WildcardInName(s.to_owned()));
        }
        Ok(Self(s.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a `$`-topic (`$SYS/…`): reserved for the broker, never matched by a leading wildcard.
    pub fn is_system(&self) -> bool {
        self.0.starts_with('$')
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One level of a filter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Level {
    Exact(String),
    /// `+`: exactly one level, any text (including empty).
    One,
    /// `#`: this level and all below, including none (`a/#` matches `a`).
    Rest,
}

/// A topic filter: what a SUBSCRIBE asks for, and what policies grant. `+` and `#` wildcards.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicFilter {
    text: String,
    levels: Vec<Level>,
}

impl TopicFilter {
    /// A filter, if valid.
    pub fn new(s: &str) -> Result<Self, TopicError> {
        check_common(s)?;
        let parts: Vec<&str> = s.split('/').collect();
        let last = parts.len() - 1;
        let mut levels = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            levels.push(match *part {
                "#" if i == last => Level::Rest,
                "+" => Level::One,
                p if p.contains(['+', '#']) => {
                    return Err(TopicError::MisplacedWildcard(s.to_owned()));
                }
                p => Level::Exact(p.to_owned()),
            });
        }
        Ok(Self {
            text: s.to_owned(),
            levels,
        })
    }

    /// The filter as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the filter has wildcards.
    pub fn is_wildcard(&self) -> bool {
        self.levels.iter().any(|l| !matches!(l, Level::Exact(_)))
    }

    /// Whether `name` matches this filter (MQTT §4.7): `+` one level, `#` the rest (including the parent
    /// level itself), and a `$`-topic is never matched by a filter that starts with a wildcard.
    pub fn matches(&self, name: &TopicName) -> bool {
        if name.is_system() && matches!(self.levels.first(), Some(Level::One | Level::Rest)) {
            return false;
        }
        let mut name_levels = name.as_str().split('/');
        for level in &self.levels {
            match level {
                Level::Rest => return true,
                Level::One => {
                    if name_levels.next().is_none() {
                        return false;
                    }
                }
                Level::Exact(want) => match name_levels.next() {
                    Some(got) if got == want => {}
                    _ => return false,
                },
            }
        }
        name_levels.next().is_none()
    }

    /// Whether every topic this filter matches is also matched by `other` (so a subscription to `self` is
    /// within a grant of `other`). Exact for filters without wildcards in `self`; conservative otherwise.
    pub fn is_within(&self, other: &TopicFilter) -> bool {
        if self.text.starts_with('$') != other.text.starts_with('$')
            && matches!(other.levels.first(), Some(Level::One | Level::Rest))
        {
            return false;
        }
        let mut mine = self.levels.iter();
        for theirs in &other.levels {
            match theirs {
                Level::Rest => return true,
                Level::One => match mine.next() {
                    Some(Level::Exact(_) | Level::One) => {}
                    _ => return false,
                },
                Level::Exact(want) => match mine.next() {
                    Some(Level::Exact(got)) if got == want => {}
                    _ => return false,
                },
            }
        }
        mine.next().is_none()
    }
}

impl fmt::Display for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A filter with variables, expanded per device: the least-privilege default grants a device only its own
/// tree (`devices/${device.id}/#`), in the spirit of AWS IoT policy variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTemplate(String);

impl TopicTemplate {
    /// A template, if every variable is known and it expands to a valid filter.
    pub fn new(s: &str) -> Result<Self, TopicError> {
        let t = Self(s.to_owned());
        t.expand(DeviceId::derived("template-check"))?;
        Ok(t)
    }

    /// The filter for `device`. A device id cannot contain `+`, `#` or `/`, so expansion never widens a grant.
    pub fn expand(&self, device: DeviceId) -> Result<TopicFilter, TopicError> {
        let mut out = String::with_capacity(self.0.len() + 36);
        let mut rest = self.0.as_str();
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| TopicError::UnknownVariable(after.to_owned()))?;
            match &after[..end] {
                "device.id" => out.push_str(&device.to_string()),
                other => return Err(TopicError::UnknownVariable(other.to_owned())),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        TopicFilter::new(&out)
    }
}

macro_rules! serde_as_text {
    ($ty:ty) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

serde_as_text!(TopicName);
serde_as_text!(TopicFilter);

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> TopicFilter {
        TopicFilter::new(s).unwrap()
    }
    fn n(s: &str) -> TopicName {
        TopicName::new(s).unwrap()
    }

    #[test]
    fn the_specifications_examples() {
        // MQTT 3.1.1 §4.7.1.2 and §4.7.1.3.
        assert!(f("sport/tennis/player1/#").matches(&n("sport/tennis/player1")));
        assert!(f("sport/tennis/player1/#").matches(&n("sport/tennis/player1/ranking")));
        assert!(f("sport/tennis/player1/#").matches(&n("sport/tennis/player1/score/wimbledon")));
        assert!(f("sport/#").matches(&n("sport")));
        assert!(f("#").matches(&n("sport/tennis")));
        assert!(f("sport/tennis/+").matches(&n("sport/tennis/player1")));
        assert!(!f("sport/tennis/+").matches(&n("sport/tennis/player1/ranking")));
        assert!(!f("sport/+").matches(&n("sport")));
        assert!(f("sport/+").matches(&n("sport/")));
        assert!(f("+/+").matches(&n("/finance")));
        assert!(f("/+").matches(&n("/finance")));
        assert!(!f("+").matches(&n("/finance")));
        // §4.7.2: $-topics.
        assert!(!f("#").matches(&n("$SYS/broker/uptime")));
        assert!(!f("+/monitor/Clients").matches(&n("$SYS/monitor/Clients")));
        assert!(f("$SYS/#").matches(&n("$SYS/monitor/Clients")));
        assert!(f("$SYS/monitor/+").matches(&n("$SYS/monitor/Clients")));
    }

    #[test]
    fn invalid_filters_and_names() {
        for bad in [
            "sport/tennis#",
            "sport/tennis/#/ranking",
            "sport+",
            "a/#/",
            "",
        ] {
            assert!(TopicFilter::new(bad).is_err(), "{bad}");
        }
        assert!(TopicName::new("a/+/b").is_err());
        assert!(TopicName::new("a/#").is_err());
        assert!(TopicName::new("a\0b").is_err());
        assert!(TopicName::new(&"a".repeat(65_536)).is_err());
        assert!(
            TopicFilter::new("+").is_ok()
                && TopicFilter::new("#").is_ok()
                && TopicFilter::new("/").is_ok()
        );
    }

    #[test]
    fn templates_give_each_device_its_own_tree() {
        let t = TopicTemplate::new("devices/${device.id}/#").unwrap();
        let a = DeviceId::derived("serial:A");
        let b = DeviceId::derived("serial:B");
        let fa = t.expand(a).unwrap();
        assert!(fa.matches(&n(&format!("devices/{a}/telemetry"))));
        assert!(!fa.matches(&n(&format!("devices/{b}/telemetry"))));
        assert!(TopicTemplate::new("devices/${device.serial}/#").is_err());
        assert!(TopicTemplate::new("devices/${device.id/#").is_err());
    }

    #[test]
    fn within_is_conservative() {
        assert!(f("plant/line-3/+/telemetry").is_within(&f("plant/#")));
        assert!(f("plant/line-3/temp").is_within(&f("plant/+/temp")));
        assert!(!f("plant/#").is_within(&f("plant/+/temp")));
        assert!(!f("#").is_within(&f("plant/#")));
        assert!(!f("$SYS/x").is_within(&f("#")));
        assert!(f("a/b").is_within(&f("a/b")));
    }
}
