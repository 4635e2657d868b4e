// Package delivery holds the checks of the repository's delivery: its GitHub Actions workflows
// against the hardening rules docs/security.md sets out, and the .gitignore of credentials. It
// has no code of its own; its tests read .github/ and the repository root.
package delivery
