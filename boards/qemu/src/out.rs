//! Text output without `core::fmt`: log lines built from string pieces, unsigned integers,
//! hex words and `f32`s (three decimals or the bit pattern), written over semihosting.
//!
//! `core::fmt` (the `Formatter`, padding, integer `Display`, and the `Display` impls of the
//! core's error types) costs ~5 KB of flash, a sixth of the 32 KB code budget; the
//! deployable firmware (`adapt`) and the panic/fault handlers print through [`Line`]
//! instead. `selftest`, which is not deployed, still uses `println!`.

/// One line of text being written: each piece goes to the host's stdout as it is added
/// (no buffer: a line costs no stack beyond its digits), and [`Line::print`] ends it with a
/// newline.
pub struct Line {
    out: Option<semihosting::io::Stdout>,
}

impl Line {
    /// A line starting with `s`.
    pub fn new(s: &str) -> Self {
        let mut l = Self {
            out: semihosting::io::stdout().ok(),
        };
        l.s(s);
        l
    }

    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        use semihosting::io::Write as _;
        if let Some(out) = self.out.as_mut() {
            let _ = out.write_all(b);
        }
        self
    }

    /// Appends a string.
    pub fn s(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    /// Appends `n` in decimal.
    pub fn u(&mut self, n: u32) -> &mut Self {
        let mut d = [0u8; 10];
        let len = decimal(n, &mut d);
        self.bytes(d.get(d.len() - len..).unwrap_or(&[]))
    }

    /// Appends `n` as `0x` and eight hex digits.
    pub fn hex(&mut self, n: u32) -> &mut Self {
        self.bytes(&hex_digits(n))
    }

    /// Appends `x`'s IEEE-754 bit pattern ([`hex`](Self::hex)): exact, for host comparisons.
    pub fn bits(&mut self, x: f32) -> &mut Self {
        self.hex(x.to_bits())
    }

    /// Appends `x` as [`milli`] writes it.
    pub fn milli(&mut self, x: f32) -> &mut Self {
        milli(x, &mut |b| {
            self.bytes(b);
        });
        self
    }

    /// Ends the line.
    pub fn print(&mut self) {
        self.bytes(b"\n");
    }
}

/// Writes `n`'s decimal digits at the end of `d`; returns how many.
fn decimal(mut n: u32, d: &mut [u8; 10]) -> usize {
    let mut len = 0;
    for c in d.iter_mut().rev() {
        *c = b'0' + (n % 10) as u8;
        n /= 10;
        len += 1;
        if n == 0 {
            break;
        }
    }
    len
}

/// `0x` and the eight hex digits of `n`.
fn hex_digits(n: u32) -> [u8; 10] {
    let mut d = *b"0x00000000";
    for (k, c) in d.iter_mut().skip(2).enumerate() {
        let nib = (n >> (28 - 4 * k)) & 0xf;
        *c = if nib < 10 {
            b'0' + nib as u8
        } else {
            b'a' + (nib - 10) as u8
        };
    }
    d
}

/// `x` with three decimals (`-1.234`), rounded to the nearest thousandth, handed to `put` in
/// pieces; `NaN`, `inf`, `-inf` as such and magnitudes of 10⁹ and more as their bit pattern.
/// The arithmetic stays in 32 bits (no 64-bit division routine in the firmware).
pub fn milli(x: f32, put: &mut impl FnMut(&[u8])) {
    if x.is_nan() {
        return put(b"NaN");
    }
    if x.is_infinite() {
        return put(if x > 0.0 { b"inf" } else { b"-inf" });
    }
    let ax = if x < 0.0 { -x } else { x };
    if ax >= 1.0e9 {
        return put(&hex_digits(x.to_bits()));
    }
    // Integer and fractional parts separately: `ax·1000` would lose the thousandths
    // above 2^24/1000 ≈ 16777. `as` truncates; `ax - int` is exact.
    let mut int = ax as u32;
    let mut thousandths = ((ax - int as f32) * 1000.0 + 0.5) as u32;
    if thousandths >= 1000 {
        int += 1;
        thousandths -= 1000;
    }
    if x < 0.0 && (int, thousandths) != (0, 0) {
        put(b"-");
    }
    let mut d = [0u8; 10];
    let len = decimal(int, &mut d);
    put(d.get(d.len() - len..).unwrap_or(&[]));
    let t = thousandths;
    put(&[
        b'.',
        b'0' + (t / 100) as u8,
        b'0' + (t / 10 % 10) as u8,
        b'0' + (t % 10) as u8,
    ]);
}
