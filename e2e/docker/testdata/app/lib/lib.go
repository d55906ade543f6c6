// Package lib is the part of the fixture module that a Dockerfile copying too little leaves out.
package lib

// Greeting is what app prints.
const Greeting = "hello"
