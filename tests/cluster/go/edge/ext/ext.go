// Package ext stands in for Traefik's dynamic-configuration extension module.
//
// Traefik's own go.mod replaces it with a directory of its repository that is
// a module of its own, so the Go module proxy never serves it, and a module
// that builds Traefik as a dependency has to bring it. The open-source build
// embeds these types inline and adds nothing through them: empty structs are
// all it needs.
package ext

// HTTP is embedded in Traefik's dynamic HTTP configuration.
type HTTP struct{}

// Router is embedded in Traefik's router configuration.
type Router struct{}
