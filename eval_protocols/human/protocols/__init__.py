"""Bundled protocol definitions, one JSON file per protocol (loaded by `eval_protocols.human.protocol`).

This file makes the folder a package so that its ``*.json`` files ship as package data.
"""
