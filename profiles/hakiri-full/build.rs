fn main() {
    hakiri_build::profile()
}
