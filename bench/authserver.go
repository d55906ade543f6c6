package main

// authserverProc is a running authserver.
type authserverProc struct {
	issuer string
}

// startAuthserver starts the authserver on the given store ("redis" or "embedded") protecting resources.
func startAuthserver(e *env, s *Section, store string, resources []string) *authserverProc {
	e.Skipf("the authserver has not landed yet")
	return nil
}
