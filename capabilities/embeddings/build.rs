fn main() {
    hakiri_build::capability()
}
