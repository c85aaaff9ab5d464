//! Exact decimal numbers, as JSON and text carry them: a number keeps every digit from the
//! message to the column, so nothing on the way may go through a float.

use std::fmt::Write as _;

/// A decimal's value: `(-1)^negative × digits × 10^exp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decimal {
    pub negative: bool,
    /// The significant digits: no leading or trailing zeros; empty for zero.
    digits: String,
    exp: i64,
}

/// PostgreSQL's `numeric` holds up to 131072 digits before the point and 16383 after it.
const NUMERIC_INT_DIGITS: i64 = 131_072;
const NUMERIC_FRAC_DIGITS: i64 = 16_383;

impl From<i64> for Decimal {
    fn from(i: i64) -> Self {
        Decimal::parse(&i.to_string()).unwrap_or(Decimal { negative: false, digits: String::new(), exp: 0 })
    }
}

impl Decimal {
    /// Sign, digits with an optional point, an optional exponent — what JSON writes and both
    /// databases read (`-1.5e3`, `+.5`, `7.`). `None` for anything else, or an exponent too large
    /// to count with.
    pub(crate) fn parse(s: &str) -> Option<Decimal> {
        let (negative, s) = match s.as_bytes().first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let (mantissa, exp) = match s.find(['e', 'E']) {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
            return None;
        }
        let exp_text = match exp {
            None => "0",
            Some(e) => {
                let unsigned = e.strip_prefix(['-', '+']).unwrap_or(e);
                if unsigned.is_empty() || !all_digits(unsigned) {
                    return None;
                }
                e
            }
        };
        let leading = int.bytes().take_while(|&b| b == b'0').count();
        let mut digits = String::with_capacity(int.len() + frac.len() - leading);
        digits.push_str(&int[leading..]);
        digits.push_str(frac);
        let start = digits.bytes().take_while(|&b| b == b'0').count();
        let end = digits.trim_end_matches('0').len();
        if start >= end {
            // Zero, whatever its exponent says.
            return Some(Decimal { negative, digits: String::new(), exp: 0 });
        }
        let trailing = (digits.len() - end) as i64;
        digits.truncate(end);
        digits.drain(..start);
        let exp: i64 = exp_text.parse().ok()?;
        let exp = exp.checked_sub(frac.len() as i64)?.checked_add(trailing)?;
        Some(Decimal { negative, digits, exp })
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    pub(crate) fn is_integer(&self) -> bool {
        self.exp >= 0 || self.is_zero()
    }

    /// How many digits the integer part has (≤ 0: the value is below 1 in magnitude).
    fn magnitude(&self) -> i64 {
        self.digits.len() as i64 + self.exp
    }

    /// Whether `|self| < 10^n`.
    pub(crate) fn below_power_of_ten(&self, n: i64) -> bool {
        self.is_zero() || self.magnitude() <= n
    }

    /// The value as an `i64` when it is an integer in range (no rounding, no clamping).
    pub(crate) fn to_i64(&self) -> Option<i64> {
        if self.is_integer() {
            self.scaled_i64(0)
        } else {
            None
        }
    }

    /// `self × 10^shift`, rounded to an integer (half away from zero); `None` beyond `i64`.
    pub(crate) fn scaled_i64(&self, shift: i64) -> Option<i64> {
        if self.is_zero() {
            return Some(0);
        }
        let exp = self.exp.checked_add(shift)?;
        let magnitude = self.digits.len() as i64 + exp;
        if magnitude > 19 {
            return None;
        }
        let mut n: i128 = 0;
        let mut round_up = false;
        if magnitude > 0 {
            let whole = magnitude as usize;
            for (i, b) in self.digits.bytes().chain(std::iter::repeat(b'0')).take(whole).enumerate() {
                n = n * 10 + i128::from(b - b'0');
                if i + 1 == whole {
                    round_up = self.digits.as_bytes().get(whole).is_some_and(|&d| d >= b'5');
                }
            }
        } else {
            // Below 1: only 0.5 and more round up to 1.
            round_up = magnitude == 0 && self.digits.as_bytes()[0] >= b'5';
        }
        n += i128::from(round_up);
        i64::try_from(if self.negative { -n } else { n }).ok()
    }

    /// The value times a small integer, exactly.
    pub(crate) fn times(&self, m: u32) -> Decimal {
        if self.is_zero() || m == 0 {
            return Decimal { negative: false, digits: String::new(), exp: 0 };
        }
        let mut out: Vec<u8> = Vec::with_capacity(self.digits.len() + 10);
        let mut carry: u64 = 0;
        for b in self.digits.bytes().rev() {
            let v = u64::from(b - b'0') * u64::from(m) + carry;
            out.push(b'0' + (v % 10) as u8);
            carry = v / 10;
        }
        while carry > 0 {
            out.push(b'0' + (carry % 10) as u8);
            carry /= 10;
        }
        out.reverse();
        let text: String = out.into_iter().map(char::from).collect();
        let mut d = Decimal::parse(&text).unwrap_or(Decimal { negative: false, digits: String::new(), exp: 0 });
        d.exp += self.exp;
        d.negative = self.negative;
        d
    }

    /// Whether PostgreSQL's `numeric` can hold the value (`None`: it can; else why not).
    pub(crate) fn numeric_overflow(&self) -> Option<&'static str> {
        if self.is_zero() {
            None
        } else if self.magnitude() > NUMERIC_INT_DIGITS {
            Some("has more than 131072 digits before the decimal point, beyond numeric")
        } else if -self.exp > NUMERIC_FRAC_DIGITS {
            Some("has more than 16383 digits after the decimal point, beyond numeric")
        } else {
            None
        }
    }

    /// One text for one value whatever its spelling (`1.50`, `15e-1` → `15e-1`; every zero `0`):
    /// what tells keys apart.
    pub(crate) fn canonical(&self, out: &mut Vec<u8>) {
        if self.is_zero() {
            out.push(b'0');
            return;
        }
        let mut s = String::with_capacity(self.digits.len() + 8);
        if self.negative {
            s.push('-');
        }
        s.push_str(&self.digits);
        let _ = write!(s, "e{}", self.exp);
        out.extend_from_slice(s.as_bytes());
    }
}

/// The most bytes of an unscaled value read (about 1,200 digits, beyond any SQL numeric's
/// precision): the conversion is quadratic in the length, and a message must not cost minutes.
pub(crate) const MAX_UNSCALED_BYTES: usize = 512;
/// The largest scale read (PostgreSQL's numeric keeps 16,383 digits after the point; a scale of
/// billions would be a string of billions of zeros).
pub(crate) const MAX_SCALE: u32 = 1000;

/// A two's-complement big-endian unscaled value and its scale as an exact decimal string
/// (Avro's and Kafka Connect's `Decimal`); `None` beyond [`MAX_UNSCALED_BYTES`] or [`MAX_SCALE`].
pub(crate) fn unscaled_decimal(b: &[u8], scale: u32) -> Option<String> {
    if b.len() > MAX_UNSCALED_BYTES || scale > MAX_SCALE {
        return None;
    }
    let mut out = String::new();
    let negative = b.first().is_some_and(|x| x & 0x80 != 0);
    // The magnitude, big-endian: the bytes themselves, or their two's complement.
    let mut mag: Vec<u8> = b.to_vec();
    if negative {
        for x in mag.iter_mut() {
            *x = !*x;
        }
        for x in mag.iter_mut().rev() {
            let (v, carry) = x.overflowing_add(1);
            *x = v;
            if !carry {
                break;
            }
        }
    }
    let digits = magnitude_digits(&mag);
    let scale = scale as usize;
    let digits = if digits.len() <= scale { format!("{}{digits}", "0".repeat(scale + 1 - digits.len())) } else { digits };
    let (int, frac) = digits.split_at(digits.len() - scale);
    if negative && digits.bytes().any(|d| d != b'0') {
        out.push('-');
    }
    out.push_str(int);
    if scale > 0 {
        out.push('.');
        out.push_str(frac);
    }
    Some(out)
}

/// The decimal digits of a big-endian unsigned magnitude (repeated division by 10⁹).
fn magnitude_digits(mag: &[u8]) -> String {
    let mut limbs: Vec<u32> = mag.iter().map(|b| u32::from(*b)).collect();
    let mut chunks = Vec::new();
    while limbs.iter().any(|l| *l != 0) {
        // Base-256 digits divided by 10⁹, most significant first.
        let mut rem: u64 = 0;
        for l in limbs.iter_mut() {
            let cur = (rem << 8) | u64::from(*l);
            *l = (cur / 1_000_000_000) as u32;
            rem = cur % 1_000_000_000;
        }
        chunks.push(rem as u32);
        let zeros = limbs.iter().take_while(|l| **l == 0).count();
        limbs.drain(..zeros);
    }
    let mut s = chunks.pop().map_or_else(|| "0".to_string(), |c| c.to_string());
    for c in chunks.iter().rev() {
        let _ = write!(s, "{c:09}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::Decimal;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s).unwrap_or_else(|| panic!("{s} is a decimal"))
    }

    #[test]
    fn a_decimal_reads_every_spelling_of_one_value_as_one() {
        let canon = |s: &str| {
            let mut v = Vec::new();
            d(s).canonical(&mut v);
            String::from_utf8(v).unwrap()
        };
        assert_eq!(canon("1.50"), canon("15e-1"));
        assert_eq!(canon("-0.0"), canon("0e999999999999999999999"));
        assert_eq!(canon("-0.0"), "0");
        assert_ne!(canon("1.0000000000000000001"), canon("1"));
        assert_eq!(canon("007.0700"), "707e-2");
        for bad in ["", "-", ".", "1e", "e5", "1.2.3", "0x10", "1,5", " 1", "NaN", "1e+-2"] {
            assert!(Decimal::parse(bad).is_none(), "{bad:?}");
        }
        assert!(Decimal::parse("1e99999999999999999999").is_none(), "an exponent beyond counting");
    }

    #[test]
    fn integers_are_exact_or_none() {
        assert_eq!(d("9007199254740993.0").to_i64(), Some(9_007_199_254_740_993));
        assert_eq!(d("-9223372036854775808").to_i64(), Some(i64::MIN));
        assert_eq!(d("-9223372036854775809").to_i64(), None);
        assert_eq!(d("9223372036854775808").to_i64(), None);
        assert_eq!(d("1e3").to_i64(), Some(1000));
        assert_eq!(d("1.5").to_i64(), None);
        assert_eq!(d("1e400").to_i64(), None);
        assert_eq!(d("0.0").to_i64(), Some(0));
    }

    #[test]
    fn scaling_rounds_half_away_from_zero() {
        assert_eq!(d("1.2345675").scaled_i64(6), Some(1_234_568));
        assert_eq!(d("-1.2345665").scaled_i64(6), Some(-1_234_567));
        assert_eq!(d("0.0000004").scaled_i64(6), Some(0));
        assert_eq!(d("0.0000005").scaled_i64(6), Some(1));
        assert_eq!(d("0.00000049999999999999999999").scaled_i64(6), Some(0));
        assert_eq!(d("19279").times(86_400).scaled_i64(0), Some(19_279 * 86_400));
        assert_eq!(d("-0.5").times(3).scaled_i64(0), Some(-2));
    }

    #[test]
    fn numeric_holds_what_postgres_holds() {
        assert!(d("1e131071").numeric_overflow().is_none());
        assert!(d("1e131072").numeric_overflow().is_some());
        assert!(d("1e-16383").numeric_overflow().is_none());
        assert!(d("1e-16384").numeric_overflow().is_some());
    }
}
