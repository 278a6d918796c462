//! The emulator's own tests, with the bash runtime of `tests/fixtures` standing in for a
//! function: what it does with functions that misbehave, its CPU and memory limits, its static
//! pages, and its `AWS_IAM` routes. The app's end-to-end tests live in `tests/e2e` at the
//! repository's root.

mod helpers;

mod iam;
mod limits;
mod misbehaving;
mod pages;
