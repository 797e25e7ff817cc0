//! The names users see for the core's enums (in flags, configuration files and JSON), and
//! the typed error of a name that none of them carries. Each enum defines its names once,
//! in its `name()`; parsing and the error's list of expected names are derived from it.

/// A name that no variant carries: what it was meant to name, and every name accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct UnknownName {
    /// What the name was for, e.g. `advantage rule`.
    pub what: &'static str,
    /// Every accepted name, in declaration order.
    pub expected: &'static [&'static str],
}

impl core::fmt::Display for UnknownName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "unknown {} (expected ", self.what)?;
        let n = self.expected.len();
        for (i, name) in self.expected.iter().enumerate() {
            let sep = match (i, n - i) {
                (0, _) => "",
                (_, 1) => " or ",
                _ => ", ",
            };
            write!(f, "{sep}{name}")?;
        }
        f.write_str(")")
    }
}

#[cfg(feature = "std")]
impl std::error::Error for UnknownName {}

/// The variant of `all` whose name is `name`.
pub(crate) fn find<T: Copy>(
    all: &[T],
    name_of: impl Fn(&T) -> &'static str,
    name: &str,
    what: &'static str,
    expected: &'static [&'static str],
) -> Result<T, UnknownName> {
    all.iter()
        .find(|v| name_of(v) == name)
        .copied()
        .ok_or(UnknownName { what, expected })
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::string::ToString;

    #[test]
    fn lists_every_expected_name() {
        let e = UnknownName {
            what: "loss scaling",
            expected: &["per-episode", "per-step"],
        };
        assert_eq!(
            e.to_string(),
            "unknown loss scaling (expected per-episode or per-step)"
        );
        let e = UnknownName {
            what: "x",
            expected: &["a", "b", "c"],
        };
        assert_eq!(e.to_string(), "unknown x (expected a, b or c)");
    }

    #[test]
    fn find_names_the_variant_or_fails() {
        let all = [1u8, 2, 3];
        let name_of = |v: &u8| match v {
            1 => "one",
            2 => "two",
            _ => "three",
        };
        assert_eq!(find(&all, name_of, "two", "n", &[]), Ok(2));
        assert_eq!(
            find(&all, name_of, "four", "n", &[]),
            Err(UnknownName {
                what: "n",
                expected: &[]
            })
        );
    }
}
