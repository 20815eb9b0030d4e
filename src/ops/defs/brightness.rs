//! `brighten` and `darken`: add or subtract an amount on colour channels, saturating, as
//! `cv2.add` and `cv2.subtract`. One definition for both; `DARKEN` picks the sign.

use super::prelude::*;
use crate::ops::point;

/// Saturating add (`DARKEN` false) or subtract of `amount` on colour channels.
#[derive(Clone, Debug, PartialEq)]
pub struct Brightness<const DARKEN: bool> {
    /// Amount (x257 on 16-bit).
    pub amount: u8,
}

/// Saturating add.
pub type Brighten = Brightness<false>;
/// Saturating subtract.
pub type Darken = Brightness<true>;

impl<const DARKEN: bool> Brightness<DARKEN> {
    fn signed(&self) -> i32 {
        if DARKEN {
            -(self.amount as i32)
        } else {
            self.amount as i32
        }
    }
}

impl<const DARKEN: bool> Operation for Brightness<DARKEN> {
    const SPEC: OpSpec = if DARKEN {
        OpSpec {
            name: "darken",
            aliases: &[],
            summary: "subtract amount from colour channels, saturating",
            params: &[int(
                "amount",
                0,
                255,
                Some("60"),
                "amount to subtract (x257 on 16-bit)",
            )],
            keeps_16bit: true,
            reference: "cv2.subtract(img, amount) per channel",
            tolerance: EXACT,
        }
    } else {
        OpSpec {
            name: "brighten",
            aliases: &[],
            summary: "add amount to colour channels, saturating",
            params: &[int(
                "amount",
                0,
                255,
                Some("60"),
                "amount to add (x257 on 16-bit)",
            )],
            keeps_16bit: true,
            reference: "cv2.add(img, amount) per channel",
            tolerance: EXACT,
        }
    };

    fn from_params(p: &Params) -> Result<Self, OpProblem> {
        Ok(Brightness {
            amount: p.i("amount") as u8,
        })
    }

    fn params(&self) -> Vec<(&'static str, Value)> {
        vec![("amount", Value::Int(self.amount.into()))]
    }

    fn cost_weight(&self) -> f64 {
        0.1
    }

    fn is_memory_bound(&self) -> bool {
        true
    }

    fn output_shape(&self, s: Shape) -> Shape {
        s
    }

    fn peak_bytes(&self, s: Shape, _: Shape, _: u64) -> u64 {
        s.bytes()
    }

    fn run(&self, img: Cow<'_, Image>) -> Result<Image, OpError> {
        Ok(point::add(img.into_owned(), self.signed()))
    }

    #[cfg(feature = "opencl")]
    fn lower(&self, _: u8) -> Option<Step> {
        Some(Step::AddSat(self.signed()))
    }
}
