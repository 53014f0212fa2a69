"""One module per `farm` subcommand: `add_parser(sub)` defines its arguments (helpers shared
by several commands are in farm.commands.options), `main(args)` is a thin layer over a library
function. `farm --help` imports every one of them, so they import the library (Ray, Halide,
pyarrow behind it) only inside main()."""
