package web

// The generated code lives in package api so its many exported types stay
// out of this package's API; regenerate after editing openapi.yaml.
//go:generate go tool oapi-codegen -config oapi-codegen.yaml openapi.yaml
