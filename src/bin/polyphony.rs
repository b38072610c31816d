fn main() {
    println!("polyphony {}", polyphony::VERSION);
}
