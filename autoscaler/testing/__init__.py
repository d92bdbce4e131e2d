"""Real throwaway servers and Laravel-faithful fake workers, shared by the tests and the demo."""
