// Command app is the program the fixture Dockerfiles build; it needs the lib package next to it.
package main

import "example.com/app/lib"

func main() { println(lib.Greeting) }
