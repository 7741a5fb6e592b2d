from spoonprint.cli.main import run

run()
