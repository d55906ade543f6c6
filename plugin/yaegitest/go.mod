// The plugin's tests that need Yaegi, Traefik's interpreter: the shared tests (internal/testkit/plugintest) run
// interpreted, and the Traefik Plugin Catalog's analyzer is applied to the repository. They are a module of their own
// because the catalog refuses a plugin whose root go.mod requires Yaegi.
module github.com/mcp-oauth-gateway/gateway/plugin/yaegitest

go 1.26.0

require (
	github.com/mcp-oauth-gateway/gateway v0.0.0
	github.com/stretchr/testify v1.12.1
	github.com/tetratelabs/wazero v1.8.0
	github.com/traefik/paerser v0.2.0
	github.com/traefik/yaegi v0.16.1
	go.yaml.in/yaml/v3 v3.0.5
	golang.org/x/mod v0.32.0
)

require (
	github.com/BurntSushi/toml v1.2.1 // indirect
	github.com/golang-jwt/jwt/v5 v5.3.1 // indirect
	github.com/mitchellh/mapstructure v1.5.1-0.20231216201459-8508981c8b6c // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)

// The gateway is this checkout, never a published version.
replace github.com/mcp-oauth-gateway/gateway => ../..
