//! Thrift's compact protocol, decoded into a small tree with every length checked against the
//! bytes left (an element takes at least one byte) and the nesting bounded, so no input can make
//! it allocate more than its own size or recurse without end.

/// Nesting deeper than this is refused (Parquet's metadata nests a handful of levels).
const MAX_DEPTH: usize = 64;

#[derive(Debug)]
pub(crate) enum Value {
    Int(i64),
    /// A binary or string field (only its length is kept).
    Bytes,
    Double,
    List(Vec<Value>),
    Struct(Struct),
}

#[derive(Debug, Default)]
pub(crate) struct Struct(Vec<(i16, Value)>);

impl Value {
    pub(crate) fn as_struct(&self) -> Option<&Struct> {
        match self {
            Value::Struct(s) => Some(s),
            _ => None,
        }
    }
}

impl Struct {
    pub(crate) fn field(&self, id: i16) -> Option<&Value> {
        self.0.iter().find(|(i, _)| *i == id).map(|(_, v)| v)
    }

    pub(crate) fn int(&self, id: i16) -> Option<i64> {
        match self.field(id)? {
            Value::Int(v) => Some(*v),
            _ => None,
        }
    }

    pub(crate) fn list(&self, id: i16) -> Option<&[Value]> {
        match self.field(id)? {
            Value::List(v) => Some(v),
            _ => None,
        }
    }
}

/// One struct from the start of `bytes` (trailing bytes are allowed, as readers allow them).
pub(crate) fn decode(bytes: &[u8]) -> Result<Struct, String> {
    decode_prefix(bytes).map(|(s, _)| s)
}

/// One struct from the start of `bytes` and the number of bytes it took.
pub(crate) fn decode_prefix(bytes: &[u8]) -> Result<(Struct, usize), String> {
    let mut r = Reader { bytes, at: 0 };
    let s = r.structure(0)?;
    Ok((s, r.at))
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.bytes.get(self.at).ok_or_else(|| format!("it ends at byte {} inside a value", self.at))?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(format!("a varint longer than 10 bytes at byte {}", self.at))
    }

    fn zigzag(&mut self) -> Result<i64, String> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    /// A length that must fit in what is left (each element at least `min` bytes).
    fn length(&mut self, n: u64, min: usize) -> Result<usize, String> {
        if n > (self.left() / min.max(1)) as u64 {
            return Err(format!("a length of {n} at byte {} with {} bytes left", self.at, self.left()));
        }
        Ok(n as usize)
    }

    fn skip(&mut self, n: usize) -> Result<(), String> {
        if n > self.left() {
            return Err(format!("{n} bytes wanted at byte {} with {} left", self.at, self.left()));
        }
        self.at += n;
        Ok(())
    }

    fn structure(&mut self, depth: usize) -> Result<Struct, String> {
        if depth > MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        let (mut fields, mut last) = (Vec::new(), 0i16);
        loop {
            let header = self.byte()?;
            if header == 0 {
                return Ok(Struct(fields));
            }
            let delta = (header >> 4) as i16;
            let id = if delta == 0 { i16::try_from(self.zigzag()?).map_err(|_| "a field id out of range".to_string())? } else { last.wrapping_add(delta) };
            last = id;
            let value = match header & 0x0f {
                1 => Value::Int(1),
                2 => Value::Int(0),
                t => self.value(t, depth)?,
            };
            fields.push((id, value));
        }
    }

    fn value(&mut self, kind: u8, depth: usize) -> Result<Value, String> {
        Ok(match kind {
            1..=3 => Value::Int(self.byte()? as i8 as i64),
            4..=6 => Value::Int(self.zigzag()?),
            7 => {
                self.skip(8)?;
                Value::Double
            }
            8 => {
                let n = self.varint()?;
                let n = self.length(n, 1)?;
                self.skip(n)?;
                Value::Bytes
            }
            9 | 10 => self.list(depth)?,
            11 => self.map(depth)?,
            12 => Value::Struct(self.structure(depth + 1)?),
            t => return Err(format!("unknown type {t} at byte {}", self.at - 1)),
        })
    }

    fn list(&mut self, depth: usize) -> Result<Value, String> {
        let header = self.byte()?;
        let n = match header >> 4 {
            15 => self.varint()?,
            n => n as u64,
        };
        let n = self.length(n, 1)?;
        let kind = header & 0x0f;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            // Booleans in a list are one byte each.
            items.push(if kind == 1 || kind == 2 { Value::Int(self.byte()? as i64) } else { self.value(kind, depth + 1)? });
        }
        Ok(Value::List(items))
    }

    fn map(&mut self, depth: usize) -> Result<Value, String> {
        let n = self.varint()?;
        let n = self.length(n, 2)?;
        if n == 0 {
            return Ok(Value::List(Vec::new()));
        }
        let kinds = self.byte()?;
        for _ in 0..n {
            self.value(kinds >> 4, depth + 1)?;
            self.value(kinds & 0x0f, depth + 1)?;
        }
        Ok(Value::List(Vec::new()))
    }
}
