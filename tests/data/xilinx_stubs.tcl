# Dry-run stand-ins for the Vivado / Vitis HLS Tcl commands the generated scripts call, for tclsh 8.6.
# The generated script runs for real (variables, paths, procs, control flow); each tool command is
# recorded in ::cpt_log, checks the files it is given and returns what the flow needs from it.
# Set before sourcing a script: ::cpt_fake_dir (where fake run/project directories live) and
# ::cpt_fclk_actual (what the PS7 reports as FCLK_CLK0 in MHz).

namespace eval ipx {}
set ::cpt_log {}
set ::cpt_missing {}
proc cpt_record {args} { lappend ::cpt_log $args }

# Files named to a command must exist (flags and their values are skipped).
proc cpt_check_files {cmd args} {
    set skip 0
    foreach a $args {
        if {$skip} { set skip 0; continue }
        if {[string match -* $a]} {
            if {$a in {-cflags -fileset -of_objects -directory}} { set skip 1 }
            continue
        }
        foreach f $a { if {![file exists $f]} { lappend ::cpt_missing "$cmd: $f" } }
    }
}

# ---- Vitis / Vivado HLS
foreach cmd {open_project set_top open_solution set_part create_clock config_interface config_rtl csynth_design export_design} {
    proc $cmd {args} "cpt_record $cmd {*}\$args"
}
set ::cpt_added {}
proc add_files {args} {
    cpt_record add_files {*}$args; cpt_check_files add_files {*}$args
    foreach a $args { if {![string match -* $a]} { foreach f $a { lappend ::cpt_added $f } } }
}
proc csim_design {args} { cpt_record csim_design {*}$args; cpt_tb_args $args }
proc cosim_design {args} { cpt_record cosim_design {*}$args; cpt_tb_args $args }
# The testbench gets VECTORS RESULTS EXPECTED: the first and last are inputs and must exist.
proc cpt_tb_args {cmdargs} {
    set i [lsearch $cmdargs -argv]
    set tb [lindex $cmdargs [expr {$i + 1}]]
    foreach f [list [lindex $tb 0] [lindex $tb 2]] {
        if {![file exists $f]} { lappend ::cpt_missing "testbench input: $f" }
    }
}
rename exit cpt_real_exit
proc exit {args} { cpt_record exit }

# ---- Vivado project, block design, runs
foreach cmd {set_property update_ip_catalog generate_target update_compile_order launch_runs wait_on_run
             open_run apply_bd_automation connect_bd_net connect_bd_intf_net assign_bd_address
             validate_bd_design save_bd_design create_bd_design make_wrapper close_project
             ipx::package_project ipx::associate_bus_interfaces ipx::add_memory_map ipx::add_address_block
             ipx::create_xgui_files ipx::update_checksums ipx::check_integrity ipx::save_core} {
    proc $cmd {args} "cpt_record $cmd {*}\$args"
}
proc create_project {args} { cpt_record create_project {*}$args }
proc current_project {args} { return cpt_project }
proc current_fileset {args} { return sources_1 }
proc get_runs {name} { return $name }
proc get_files {args} { return [lindex $args end] }
proc get_bd_pins {p} { return pin:$p }
proc get_bd_intf_pins {p} { return intf:$p }
proc get_bd_cells {c} { return $c }
proc create_bd_cell {args} { cpt_record create_bd_cell {*}$args; return [lindex $args end] }
proc ipx::current_core {} { return core }
# -import_files copies the project's files into the IP's src/ (flat), as ipx::get_files then names them.
proc ipx::get_file_groups {args} { return {xilinx_anylanguagesynthesis xilinx_anylanguagebehavioralsimulation} }
proc ipx::get_files {args} {
    set group [lindex $args [expr {[lsearch $args -of_objects] + 1}]]
    set out {}
    foreach f $::cpt_added { lappend out "ipxfile:$group:src/[file tail $f]" }
    return $out
}
proc ipx::get_memory_maps {args} { return {} }
proc ipx::get_bus_interfaces {args} { return busif }
proc ipx::get_address_blocks {args} { return block }
proc report_utilization {args} { cpt_record report_utilization {*}$args; cpt_touch $args }
proc report_timing_summary {args} { cpt_record report_timing_summary {*}$args; cpt_touch $args }
proc cpt_touch {cmdargs} {
    set i [lsearch $cmdargs -file]
    close [open [lindex $cmdargs [expr {$i + 1}]] w]
}
proc get_property {name obj} {
    cpt_record get_property $name $obj
    if {[string match ipxfile:* $obj]} { return [lindex [split $obj :] end] }
    switch -- $name {
        PROGRESS { return 100% }
        DIRECTORY { return [file join $::cpt_fake_dir $obj] }
        CONFIG.PCW_ACT_FPGA0_PERIPHERAL_FREQMHZ { return $::cpt_fclk_actual }
    }
    return ""
}
