"""Devices that time candidates: the host CPU, Android phones over adb, a synthetic one."""
